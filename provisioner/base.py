"""The provisioner contract: typed records, the Provider protocol, the provider registry, the errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from lit.runtime.compute import CloudCompute
from lit.runtime.errors import BadInput, InfrastructureError

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


Progress = Callable[[str], None]


class Provider(Protocol):
    """What every provider does. The cloud-neutral launcher runs them in order and tears down on failure."""

    name: str

    def can_ever_place(self, cluster: Cluster, compute: CloudCompute) -> Optional[str]:
        """None if some machine of the cluster could take `compute`; otherwise why not."""
        ...

    def candidates(self, cluster: Cluster, compute: CloudCompute, load: dict[str, int]) -> list[Machine]:
        """Machines to try for `compute`, best first (`load`: works of this run per machine id)."""
        ...

    def acquire(self, cluster: Cluster, compute: CloudCompute, machine: Machine, run_id: str, work: str,
                progress: Progress, app: str = "", made: Optional[Callable[[Lease], None]] = None) -> Optional[Lease]:
        """Take `machine` for one work (leasing its GPUs; making the instance), or None if it is not free now.
        `made` is told as soon as a machine exists (or runs again) for the work, before it is ready: lit removes
        it at the end even if it never became ready."""
        ...

    def claim(self, ssh: Any, cluster: Cluster, compute: CloudCompute, lease: Lease, owner: str) -> Optional[Lease]:
        """On the machine, over the first verified connection (lease GPUs, replace the host key)."""
        ...

    def idle_delay(self, cluster: Cluster, compute: CloudCompute) -> Optional[float]:
        """Seconds after a work's last call ends before its machine is released; None: keep it."""
        ...

    def release(self, cluster: Cluster, lease: Lease) -> None:
        """The work ended: give back what it held (an AWS GPU instance is stopped here)."""
        ...

    def terminate(self, cluster: Cluster, lease: Lease) -> None:
        """The app ended: remove what was made for it."""
        ...

    def poweroff_command(self, cluster: Cluster, machine: Machine) -> Optional[list[str]]:
        """What an orphaned agent runs to stop its machine; None where lit must never power off."""
        ...

    def list_running(self, cluster: Cluster) -> list[Machine]:
        ...

    def delete(self, cluster: Cluster, progress: Progress) -> None:
        """Undo the cluster (stop lit's agents; for clouds, remove what the cluster made)."""
        ...


def get_provider(name: str) -> Provider:
    from . import ssh
    from .aws.provider import AWSProvider

    providers: dict[str, Callable[[], Provider]] = {"ssh": ssh.SSHProvider, "aws": AWSProvider}
    factory = providers.get(name)
    if factory is None:
        raise BadInput(f"unknown provider {name!r}; available: {', '.join(providers)}")
    return factory()
