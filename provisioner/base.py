"""The provisioner contract: typed records, the Provider base class every provider implements, the errors.

The registry (registry.py) finds providers by name; nothing outside `lit.provisioner.<name>` names one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from lit.runtime.compute import CloudCompute
from lit.runtime.errors import BadInput, InfrastructureError

if TYPE_CHECKING:
    from .connector import Connector

CLUSTER_NAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
RECORD_VERSION = 1


class HostKeyChanged(InfrastructureError):
    """A host presented a key other than the one pinned for it: refused."""


class Unreachable(InfrastructureError):
    """A machine did not answer."""


class AgentGone(InfrastructureError):
    """The work's agent on its machine ended without saying why (e.g. killed)."""

    exit_code = 1


class CannotPlace(BadInput):
    """No machine of the cluster could ever take this work."""


def check_cluster_name(name: str) -> str:
    """The cluster's name as stored: lowercase (so the seed's `cluster-A` names cluster `cluster-a`)."""
    normalized = (name or "").lower()
    if not CLUSTER_NAME.match(normalized):
        raise BadInput(f"invalid cluster name {name!r}: use 1-63 lowercase letters, digits and '-', "
                       "not starting or ending with '-'")
    return normalized


@dataclass(frozen=True)
class Machine:
    """A machine a work can run on. `address` is where lit connects (SSH); `internal_address` is where the other
    works of the cluster reach it (a cloud instance's private address; by default the same as `address`)."""

    id: str
    address: str
    user: str
    port: int = 22
    cpus: int = 0
    memory_mb: int = 0
    gpus: int = 0
    state: str = "ready"
    python: str = "python3"
    internal_address: str = ""

    def __post_init__(self) -> None:
        if not self.internal_address:
            object.__setattr__(self, "internal_address", self.address)

    @property
    def target(self) -> str:
        """How lit names the machine in what it says: USER@ADDRESS:PORT, or its id where lit reaches it otherwise
        (a pod, through the API server)."""
        if not self.user and not self.port:
            return self.id
        return f"{self.user}@{self.address}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "address": self.address, "user": self.user, "port": self.port,
                                "cpus": self.cpus, "memory_mb": self.memory_mb, "gpus": self.gpus, "state": self.state,
                                "python": self.python}
        if self.internal_address != self.address:  # records of machines with one address stay as they were
            data["internal_address"] = self.internal_address
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Machine:
        return cls(**data)


@dataclass(frozen=True)
class Cluster:
    """A cluster record (versioned JSON under the lit home). Holds no secret: the key stays where it is."""

    name: str
    provider: str
    machines: tuple[Machine, ...]
    key_path: str
    orphan_timeout: float = 120.0
    created: str = ""
    state: str = "ready"
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "name": self.name, "provider": self.provider,
                "machines": [m.to_dict() for m in self.machines], "key_path": self.key_path,
                "orphan_timeout": self.orphan_timeout, "created": self.created, "state": self.state,
                "settings": self.settings}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cluster:
        version = data.get("version")
        if version != RECORD_VERSION:
            raise BadInput(f"cluster record version {version!r} is not supported by this lit "
                           f"(it reads version {RECORD_VERSION}); upgrade lit")
        return cls(name=data["name"], provider=data["provider"],
                   machines=tuple(Machine.from_dict(m) for m in data["machines"]), key_path=data["key_path"],
                   orphan_timeout=float(data.get("orphan_timeout", 120.0)), created=data.get("created", ""),
                   state=data.get("state", "ready"), settings=dict(data.get("settings") or {}))


@dataclass(frozen=True)
class Lease:
    """One machine given to one work (and, for GPU works, the GPUs it holds)."""

    cluster: str
    machine: Machine
    gpu_ids: tuple[int, ...] = ()
    lease_dir: Optional[str] = None
    known_hosts: Optional[str] = None  # this machine's pinned host key, when not the cluster's file
    instance_type: str = ""
    price_per_hour: float = 0.0
    # A machine made for this lease with its home known (a pod's): nothing of lit is on it yet, so shipping skips
    # the round trip that asks. "" where lit must ask (a host or an instance that may hold earlier uploads).
    fresh_home: str = ""


Progress = Callable[[str], None]


@dataclass(frozen=True)
class Option:
    """An option a provider takes on `lit create|update|delete cluster` or `lit cluster policy`. The CLI adds each
    provider's options to the command and hands a provider only the ones it declared."""

    flag: str  # "--role-arn"
    help: str
    multiple: bool = False
    is_flag: bool = False
    metavar: Optional[str] = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class ProviderInfo:
    """What the CLI needs to know of a provider without importing it (its SDKs load only when it is used)."""

    name: str
    summary: str
    factory: str  # "module:Class" of its Provider, imported on first use
    create_options: tuple[Option, ...] = ()
    update_options: tuple[Option, ...] = ()
    delete_options: tuple[Option, ...] = ()
    policy_options: tuple[Option, ...] = ()

    def options(self, command: str) -> tuple[Option, ...]:
        """Its options for `lit create|update|delete cluster` or `lit cluster policy` ("create" ... "policy")."""
        by_command = {"create": self.create_options, "update": self.update_options, "delete": self.delete_options,
                      "policy": self.policy_options}
        return by_command[command]


@dataclass(frozen=True)
class Created:
    """A cluster `create` made, and what to tell the user about it."""

    cluster: Cluster
    where: str  # "(3 hosts)", "in us-east-1"
    details: tuple[str, ...] = ()  # lines to show, e.g. the host keys pinned


@dataclass(frozen=True)
class Listing:
    """One row of `lit list clusters`: where the cluster is and what runs there (asked of the provider)."""

    where: str
    machines: str


class ObjectStore(Protocol):
    """A store for files between works that machines reach with presigned URLs (they hold no credentials).
    Keys are as works name them: "artifacts/..." (this run's) and "drives/NAME/..." (kept across runs)."""

    def presign(self, op: str, key: str) -> str:
        """A URL valid for a few minutes to "put" or "get" exactly one object."""
        ...

    def list(self, prefix: str) -> list[str]:
        """The keys that start with `prefix`."""
        ...

    def delete(self, key: str) -> bool:
        """Delete one object; False if there was none."""
        ...


Options = dict[str, Any]


class Provider:
    """What a provider does, for the cloud-neutral code (the CLI and the launcher) that never names one.

    A provider is a package `lit.provisioner.<name>` whose `INFO` the registry reads; its `Provider` subclass
    implements the abstract verbs. Optional capabilities have defaults here, so callers never probe for them.
    """

    name = ""
    # Whether release() removes the machine (a pod cannot be stopped and started again): what release() did is
    # then final, and the end of the run has nothing left to terminate.
    release_removes = False

    # -- clusters (the CLI) -------------------------------------------------------------------------
    def create(self, name: str, options: Options, orphan_timeout: float, progress: Progress) -> Created:
        """Make cluster `name` from the options the provider declared; nothing is left half made on error."""
        raise NotImplementedError

    def update(self, cluster: Cluster, options: Options, progress: Progress) -> str:
        """Change a cluster; returns what changed, in one line."""
        raise BadInput(f"cluster {cluster.name} ({cluster.provider}) has nothing to update")

    def delete(self, cluster: Cluster, options: Options, progress: Progress) -> None:
        """Undo the cluster (stop lit's agents; for clouds, remove what it made) and remove its record."""
        raise NotImplementedError

    def describe(self, cluster: Cluster) -> Listing:
        gpus = sum(m.gpus for m in cluster.machines)
        return Listing(", ".join(m.address for m in cluster.machines), f"{len(cluster.machines)} hosts, {gpus} GPUs")

    def policy(self, options: Options) -> list[tuple[str, Any]]:
        """The permissions an administrator grants for lit, as (title, document) pairs."""
        raise BadInput(f"provider {self.name} needs no permissions policy")

    # -- machines (the launcher) -------------------------------------------------------------------
    def can_ever_place(self, cluster: Cluster, compute: CloudCompute) -> Optional[str]:
        """None if some machine of the cluster could take `compute`; otherwise why not."""
        raise NotImplementedError

    def candidates(self, cluster: Cluster, compute: CloudCompute, load: dict[str, int]) -> list[Machine]:
        """Machines to try for `compute`, best first (`load`: works of this run per machine id)."""
        raise NotImplementedError

    def acquire(self, cluster: Cluster, compute: CloudCompute, machine: Machine, run_id: str, work: str,
                progress: Progress, app: str = "", made: Optional[Callable[[Lease], None]] = None,
                cancelled: Optional[Callable[[], bool]] = None) -> Optional[Lease]:
        """Take `machine` for one work (making the instance where there is none), or None if it is not free now.
        `made` is told as soon as a machine exists (or runs again) for the work, before it is ready: lit removes
        it at the end even if it never became ready. A provider that waits inside acquire (a pod until it is
        scheduled) returns None once `cancelled()` holds (the app ended meanwhile)."""
        raise NotImplementedError

    def claim(self, ssh: Any, cluster: Cluster, compute: CloudCompute, lease: Lease, owner: str) -> Optional[Lease]:
        """On the machine, over the first verified connection (lease GPUs, replace the host key); None: taken."""
        return lease

    def idle_delay(self, cluster: Cluster, compute: CloudCompute) -> Optional[float]:
        """Seconds after a work's last call ends before its machine is released; None: keep it."""
        return None

    def release(self, cluster: Cluster, lease: Lease) -> None:
        """The work ended: give back what it held (a cloud GPU machine is stopped here)."""
        return None

    def terminate(self, cluster: Cluster, lease: Lease) -> None:
        """The app ended: remove what was made for it."""
        return self.release(cluster, lease)

    def lost(self, cluster: Cluster, lease: Lease, settle: float) -> Optional[str]:
        """Why the machine under a running work is gone for good, or None while it may answer again (lit then
        reconnects until the orphan timeout). Asked when the connection to the agent drops; the provider may
        wait up to `settle` seconds for its API to say."""
        return None

    def poweroff_command(self, cluster: Cluster, machine: Machine) -> Optional[list[str]]:
        """What an orphaned agent runs to stop its machine; None where lit must never power off."""
        return None

    def list_running(self, cluster: Cluster) -> list[Machine]:
        return list(cluster.machines)

    def object_store(self, cluster: Cluster, run_id: str) -> Optional[ObjectStore]:
        """The cluster's store for files between works, if it has one; None: files go through lit's relay."""
        return None

    def release_note(self, terminated: bool) -> str:
        """What lit says once a machine made for a work is released (stopped) or removed (terminated)."""
        return "machine terminated" if terminated else "machine stopped"

    def end_run(self, cluster: Cluster, run_id: str) -> None:
        """The run ended (after every machine it made was released): remove what the provider made per run."""
        return None

    def connector(self, cluster: Cluster) -> Optional[Connector]:
        """How lit reaches this cluster's machines; None: SSH, with the cluster's key and pinned host keys."""
        return None

    def leftover_hint(self, cluster: Cluster, machine_ids: list[str]) -> str:
        """How to remove machines a run could not (said after the run, with their ids)."""
        return f"Remove them with `lit delete cluster {cluster.name} --yes`"


class Channel(Protocol):
    """A running command's byte stream (paramiko's Channel): select()able, with its exit status."""

    exit_status: int
    status_event: Any  # threading.Event-like: set once the command has ended

    def fileno(self) -> int: ...

    def recv(self, size: int) -> bytes: ...

    def sendall(self, data: bytes) -> None: ...

    def shutdown_write(self) -> None: ...

    def close(self) -> None: ...


class Tunnel(Protocol):
    """A TCP connection to a port of a machine, through lit's connection to it (an SSH direct-tcpip channel, a
    Kubernetes port-forward stream): select()able."""

    def fileno(self) -> int: ...

    def recv(self, size: int) -> bytes: ...

    def sendall(self, data: bytes) -> None: ...

    def shutdown_write(self) -> None: ...

    def close(self) -> None: ...


class Connection:
    """One verified connection to a machine (sshconn.SSH; the launcher's tests run commands locally)."""

    machine: Machine
    tunnels = False  # whether tunnel() can reach the machine's ports (ClusterLauncher.forward)

    def run(self, command: str, timeout: float = 60.0, stdin: Optional[bytes] = None) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of one command."""
        raise NotImplementedError

    def check(self, command: str, what: str, timeout: float = 60.0, stdin: Optional[bytes] = None) -> str:
        """stdout of a command that must succeed; otherwise its last line of output names what failed."""
        code, out, err = self.run(command, timeout=timeout, stdin=stdin)
        if code != 0:
            detail = (err or out).strip().splitlines()[-1:] or [f"exit code {code}"]
            raise InfrastructureError(f"{self.machine.target}: {what} failed: {detail[0]}")
        return out

    def channel(self, command: str) -> Channel:
        """A command whose stdin and stdout stay open (the relay to an agent)."""
        raise NotImplementedError

    def tunnel(self, port: int) -> Tunnel:
        """A new TCP connection to 127.0.0.1:`port` on the machine (where `tunnels`), opened from the machine's
        side; InfrastructureError if it cannot be opened (nothing listens there, the connection is gone). Safe to
        call from any thread."""
        raise InfrastructureError(f"{self.machine.target}: lit cannot reach this machine's ports")

    def close(self) -> None:
        raise NotImplementedError
