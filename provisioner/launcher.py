"""The cloud-neutral step order: acquire a machine, wait for SSH, ship code, start the agent, relay.

`ClusterLauncher` is the runtime's Launcher for `lit run --cloud`. Each work gets a thread (`RemoteAgent`)
that prepares its machine and then relays the protocol between a local socket (what the orchestrator
selects on) and an SSH channel to the agent, reconnecting with backoff when the connection drops. The
orchestrator stays single-threaded and never learns which provider it got.
"""

from __future__ import annotations

import hashlib
import json
import select
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from lit.runtime.compute import CloudCompute
from lit.runtime.errors import InfrastructureError, LitError
from lit.runtime.transport import AgentSpec, Launched, Placement, StreamSocket, short_name

from . import bundle as bundles
from . import store
from .base import AgentGone, CannotPlace, Cluster, HostKeyChanged, Lease, Machine, Provider, Unreachable
from .registry import get_provider
from .sshconn import SSH, wait_for_ssh

WAIT_RETRY_SECONDS = 2.0
CLOSE_WAIT_SECONDS = 120.0  # at the end, how long to wait for machines still being prepared to be removed
CLOSE_TELL_SECONDS = 2.0  # ... and after how long to say so
EXTRACT = r"""
import os, shutil, sys, tarfile
target = sys.argv[1]
tmp = target + ".tmp-" + str(os.getpid())
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
    if hasattr(tarfile, "data_filter"):
        tar.extractall(tmp, filter="data")
    else:
        tar.extractall(tmp)
open(os.path.join(tmp, ".complete"), "w").close()
try:
    os.rename(tmp, target)
except OSError:
    shutil.rmtree(tmp, ignore_errors=True)  # another upload of the same bundle won the race: same content
"""


# What `python -m lit.runtime.agent attach` does, small enough to start fast: relay stdin/stdout to the agent's
# unix socket; exit 4 if there is no agent there (it ended or was killed).
ATTACH = r"""
import os, selectors, socket, sys
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    client.connect(sys.argv[1])
except OSError as exc:
    sys.stderr.write("lit agent: no agent at %s: %s\n" % (sys.argv[1], exc))
    sys.exit(4)
selector = selectors.DefaultSelector()
selector.register(0, selectors.EVENT_READ, "in")
selector.register(client, selectors.EVENT_READ, "sock")
while True:
    for key, _ in selector.select():
        if key.data == "in":
            data = os.read(0, 262144)
            if not data:
                sys.exit(0)
            client.sendall(data)
        else:
            data = client.recv(262144)
            if not data:
                sys.exit(0)
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]
"""


class Cancelled(LitError):
    """The orchestrator ended before this machine was ready."""


def app_identity(app_file: Path) -> str:
    """A stable name for the app across runs, `<stem>-<12 hex>`: its stem (most apps are `app.py`) plus a digest
    of this machine's name and the file's absolute path, so machines kept for one app (--keep-machines) are never
    taken by another app whose file or works have the same names. Editing the app keeps its identity."""
    where = f"{socket.gethostname()}:{app_file.resolve()}"
    return f"{app_file.stem}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"


class ClusterLauncher:
    """Starts each work's agent on a machine of a cluster (`--cloud NAME`, or the work's own clusters)."""

    def __init__(self, default_cluster: str, run_id: str, app_file: Path, keep_machines: bool = False) -> None:
        self.run_id = run_id
        self.app_name = app_identity(Path(app_file))
        self.keep_machines = keep_machines
        self.default = default_cluster
        self.clusters: dict[str, tuple[Cluster, Provider]] = {}
        self._cluster(default_cluster)
        self.bundle = bundles.build(app_file)
        self.lock = threading.Lock()
        self.load: dict[str, int] = {}
        self.remotes: dict[str, RemoteAgent] = {}
        self.host_locks: dict[str, threading.Lock] = {}  # one upload of the bundle per host at a time
        self.shipped: set[tuple[str, str]] = set()  # (machine id, bundle sha256) this run has unpacked
        self.reports: dict[str, dict[str, Any]] = {}
        # machines made (or started again) for this run and not yet known gone, or kept stopped at the end
        self.up: dict[str, tuple[Cluster, Provider, Lease]] = {}
        self.threads: list[RemoteAgent] = []  # every work's thread this run started
        self.direct_progress: Optional[Callable[[str, str], None]] = None  # set once the app is ending

    def host_lock(self, machine_id: str) -> threading.Lock:
        with self.lock:
            return self.host_locks.setdefault(machine_id, threading.Lock())

    def _cluster(self, name: str) -> tuple[Cluster, Provider]:
        if name not in self.clusters:
            cluster = store.load(name)
            self.clusters[name] = (cluster, get_provider(cluster.provider))
        return self.clusters[name]

    @property
    def orphan_timeout(self) -> float:
        return min(cluster.orphan_timeout for cluster, _ in self.clusters.values())

    def options(self, compute: CloudCompute) -> list[tuple[Cluster, Provider]]:
        names = list(compute.clusters) if compute.clusters else [self.default]
        return [self._cluster(name) for name in names]

    def check(self, works: list[tuple[str, CloudCompute]]) -> None:
        """Refuse, before anything starts, a work that no machine of its clusters could ever take."""
        for name, compute in works:
            reasons = []
            for cluster, provider in self.options(compute):
                reason = provider.can_ever_place(cluster, compute)
                if reason is None:
                    break
                reasons.append(reason)
            else:
                raise CannotPlace(f"{short_name(name)} cannot be placed: {'; '.join(reasons)}")

    # -- the runtime's Launcher -------------------------------------------------------------------
    def launch(self, spec: AgentSpec, app_file: Path) -> Launched:
        self.check([(spec.work_name, spec.compute)])
        ours, theirs = socket.socketpair()
        with self.lock:
            previous = self.remotes.get(spec.work_name)
        remote = RemoteAgent(self, spec, theirs, previous)
        with self.lock:
            self.remotes[spec.work_name] = remote
            self.threads.append(remote)
        remote.start()
        return Launched(SocketTransport(ours, remote), remote.placement)

    def idle(self, work_name: str) -> Optional[float]:
        """Seconds after the work's last call before its machine is released (None: keep it up)."""
        with self.lock:
            remote = self.remotes.get(work_name)
        if remote is None or remote.cluster is None or remote.provider is None:
            return None
        return remote.provider.idle_delay(remote.cluster, remote.spec.compute)

    def release(self, work_name: str, final: bool) -> None:
        """The work's agent ended: final=False, its machine may be stopped (a later call starts it again);
        final=True, the app ended: terminate it (or stop it, with --keep-machines)."""
        with self.lock:
            remote = self.remotes.pop(work_name, None) if final else self.remotes.get(work_name)
        if remote is None:
            return
        if final:
            if remote.release_thread is not None:
                remote.release_thread.join()
            remote.release_machine(not self.keep_machines, final=True)
        elif remote.release_thread is None:
            # Between calls: stop the machine without holding up the loop (a StopInstances round trip).
            remote.release_thread = threading.Thread(target=remote.release_machine, args=(False,), daemon=True)
            remote.release_thread.start()

    # -- the object store (aws: the cluster's bucket, through presigned URLs) -------------------------
    def _bucket(self, work_name: str) -> tuple[Any, str]:
        with self.lock:
            remote = self.remotes.get(work_name)
        cluster = remote.cluster if remote is not None and remote.cluster is not None else \
            self._cluster(self.default)[0]
        bucket = cluster.settings.get("outputs", {}).get("bucket")
        if not bucket:
            raise InfrastructureError(f"cluster {cluster.name} has no bucket")
        from .aws.provider import AWSProvider

        provider = self._cluster(cluster.name)[1]
        assert isinstance(provider, AWSProvider)
        return provider.session(cluster).client("s3"), bucket

    def _object_key(self, key: str) -> str:
        if key.startswith("artifacts/"):
            return f"runs/{self.run_id}/{key}"
        if key.startswith("drives/"):
            return key
        raise InfrastructureError(f"no such object: {key}")

    def presign(self, work_name: str, op: str, key: str) -> str:
        """A URL valid for 15 minutes to put or get exactly one object (machines hold no AWS credentials)."""
        s3, bucket = self._bucket(work_name)
        method = {"put": "put_object", "get": "get_object"}.get(op)
        if method is None:
            raise InfrastructureError(f"no such operation: {op}")
        return str(s3.generate_presigned_url(method, Params={"Bucket": bucket, "Key": self._object_key(key)},
                                             ExpiresIn=900))

    def store_list(self, work_name: str, prefix: str) -> list[str]:
        """The keys, as works name them ("drives/NAME/..."), of the objects that start with `prefix`."""
        s3, bucket = self._bucket(work_name)
        physical = self._object_key(prefix)
        root = physical[:len(physical) - len(prefix)]  # what _object_key puts before a key ("runs/RUN/" or "")
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=physical):
            keys += [o["Key"][len(root):] for o in page.get("Contents", [])]
        return keys

    def store_delete(self, work_name: str, key: str) -> bool:
        """Delete one object; False if there is none (S3's DeleteObject succeeds either way: asked first)."""
        import botocore.exceptions

        s3, bucket = self._bucket(work_name)
        name = self._object_key(key)
        try:
            s3.head_object(Bucket=bucket, Key=name)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        s3.delete_object(Bucket=bucket, Key=name)
        return True

    def machine_report(self) -> dict[str, dict[str, Any]]:
        """Per work: instance type, machine seconds and cost (for the run summary)."""
        with self.lock:
            return {name: report for name, report in self.reports.items()}

    def ending(self, progress: Callable[[str, str], None]) -> None:
        self.direct_progress = progress

    def made_machine(self, cluster: Cluster, provider: Provider, lease: Lease) -> None:
        """A provider made (or started again) a machine for a work: it is ours to remove from now on."""
        with self.lock:
            self.up[lease.machine.id] = (cluster, provider, lease)

    def close(self, hurry: Optional[Callable[[], bool]] = None) -> None:
        """The app ended: cancel the machines still being prepared, wait for each work's thread to remove its
        machine, then remove any machine made that no thread removed (one that never became ready). A second
        signal (`hurry`) stops the waiting: what is still up is then listed by still_up()."""
        hurried = hurry or (lambda: False)
        with self.lock:
            threads = list(self.threads)
        for remote in threads:
            remote.cancelled = True
        started = time.monotonic()
        deadline = started + CLOSE_WAIT_SECONDS
        told = False
        for remote in threads:
            while remote.is_alive() and not hurried() and time.monotonic() < deadline:
                remote.join(0.1)
                if not told and time.monotonic() - started > CLOSE_TELL_SECONDS and self.direct_progress is not None:
                    told = True  # say why lit has not ended yet, and how not to wait
                    waiting = sum(1 for r in threads if r.is_alive())
                    self.direct_progress(short_name(remote.spec.work_name),
                                         f"waiting for {waiting} machine(s) still being prepared, to remove them; "
                                         "press Ctrl-C again to stop waiting")
        with self.lock:
            left = [self.up[mid] for mid in sorted(self.up)]
        for cluster, provider, lease in left:
            if hurried():
                return
            try:
                if self.keep_machines:
                    provider.release(cluster, lease)
                else:
                    provider.terminate(cluster, lease)
            except LitError:
                continue  # still listed by still_up()
            with self.lock:
                self.up.pop(lease.machine.id, None)

    def still_up(self) -> list[str]:
        """Machines this run started that are not known to be stopped or terminated."""
        with self.lock:
            return sorted(self.up)

    def add_load(self, machine_id: str, delta: int) -> None:
        with self.lock:
            self.load[machine_id] = self.load.get(machine_id, 0) + delta

    def reserve(self, cluster: Cluster, provider: Provider, compute: CloudCompute,
                tried: set[str]) -> Optional[Machine]:
        """The best machine not tried yet, counted as loaded at once (works placed concurrently spread)."""
        with self.lock:
            for machine in provider.candidates(cluster, compute, self.load):
                if machine.id not in tried:
                    tried.add(machine.id)
                    self.load[machine.id] = self.load.get(machine.id, 0) + 1
                    return machine
        return None


class SocketTransport(StreamSocket):
    """The orchestrator's end of a socket pair whose other end a RemoteAgent relays."""

    def __init__(self, sock: socket.socket, remote: RemoteAgent) -> None:
        super().__init__(sock)
        self.remote = remote

    def close(self) -> None:
        self.remote.cancelled = True
        super().close()

    def kill(self) -> None:
        self.remote.kill()

    def wait(self, timeout: float) -> Optional[int]:
        self.remote.join(timeout)
        if self.remote.is_alive():
            return None
        try:
            self.sock.close()
        except OSError:
            pass
        return 0 if self.remote.failure is None else 1

    def failure(self) -> Optional[Exception]:
        return self.remote.failure


class RemoteAgent(threading.Thread):
    """Prepares one work's machine, starts its agent, then relays bytes until the agent or lit ends."""

    def __init__(self, launcher: ClusterLauncher, spec: AgentSpec, sock: socket.socket,
                 previous: Optional[RemoteAgent] = None) -> None:
        super().__init__(name=f"lit-remote-{spec.work_name}", daemon=True)
        self.previous = previous  # this work's last agent: its machine is released before we reuse it
        self.release_thread: Optional[threading.Thread] = None
        self.launcher = launcher
        self.spec = spec
        self.sock = sock
        self.failure: Optional[Exception] = None
        self.cancelled = False
        self.cluster: Optional[Cluster] = None
        self.provider: Optional[Provider] = None
        self.lease: Optional[Lease] = None
        self.ssh: Optional[SSH] = None
        self.agent_pid: Optional[int] = None
        self.socket_path = ""
        self.attach_command = ""
        self._placement: Optional[Placement] = None
        self.orphan_timeout = launcher.orphan_timeout
        self.heartbeat = min(10.0, self.orphan_timeout / 4)
        self.saw_bye = False
        self.ended_cleanly = False
        self.machine_state = "running"
        self.stops: list[tuple[float, float]] = []  # (asked, accepted) wall times of each stop
        self.running_since: Optional[float] = None
        self.machine_seconds = 0.0

    # -- the machine's life ------------------------------------------------------------------------
    def release_machine(self, terminate: bool, final: bool = False) -> None:
        """Stop (or terminate) the machine the provider made for this work; count its time."""
        if self.lease is None or self.cluster is None or self.provider is None:
            return
        with self.launcher.lock:
            wanted = "terminated" if terminate else "stopped"
            if self.machine_state == "terminated" or self.machine_state == wanted:
                if final:  # stopped after its last call, kept stopped at the end (--keep-machines)
                    self.launcher.up.pop(self.lease.machine.id, None)
                return
            self.machine_state = wanted
        if self.running_since is not None:
            self.machine_seconds += time.monotonic() - self.running_since
            self.running_since = None
        lease, cluster, provider = self.lease, self.cluster, self.provider
        asked = time.time()
        try:
            if terminate:
                provider.terminate(cluster, lease)
            else:
                provider.release(cluster, lease)
                self.stops.append((asked, time.time()))
            if lease.instance_type:
                self.progress("machine terminated" if terminate else "machine stopped")
        except LitError as exc:
            self.progress(f"could not release {lease.machine.id}: {exc}")
            return
        finally:
            self._report()
        if lease.instance_type and (terminate or final):  # stopped between calls still counts as ours
            with self.launcher.lock:
                self.launcher.up.pop(lease.machine.id, None)

    def _report(self) -> None:
        if self.lease is None or not self.lease.instance_type:
            return
        seconds = self.machine_seconds + (time.monotonic() - self.running_since if self.running_since else 0.0)
        with self.launcher.lock:
            earlier = self.launcher.reports.get(self.spec.work_name, {}).get("stops", [])
            stops = earlier + [list(s) for s in self.stops if list(s) not in earlier]
            self.launcher.reports[self.spec.work_name] = {
                "machine": self.lease.machine.id, "instance_type": self.lease.instance_type, "seconds": seconds,
                "cost": seconds / 3600 * self.lease.price_per_hour, "stops": stops}

    # -- what the orchestrator asks ---------------------------------------------------------------
    def placement(self) -> Placement:
        assert self._placement is not None, "the agent said hello before it was placed"
        return self._placement

    def progress(self, step: str) -> None:
        direct = self.launcher.direct_progress
        if direct is not None:  # the app is ending: the orchestrator no longer reads this stream
            direct(short_name(self.spec.work_name), step)
            return
        line = json.dumps({"t": "progress", "step": step}).encode() + b"\n"
        try:
            self.sock.sendall(line)
        except OSError:
            pass

    def kill(self) -> None:
        """End the agent's whole process group on its machine (it did not stop in time)."""
        self.cancelled = True
        if self.ended_cleanly:
            return  # it said bye and ended: nothing of it is left to kill
        threading.Thread(target=self._kill_remote, daemon=True).start()

    def _kill_remote(self) -> None:
        if self.agent_pid is None or self.cluster is None or self.lease is None:
            return
        try:
            with SSH(self.lease.machine, self.cluster.key_path, self._known_hosts(), timeout=5) as ssh:
                ssh.run(f"kill -9 -- -{self.agent_pid} {self.agent_pid} 2>/dev/null; "
                        f"rm -f {shlex.quote(self.socket_path)} {shlex.quote(self.socket_path)}.pid", timeout=10)
        except LitError:
            pass  # unreachable: its orphan timeout ends it

    # -- the thread -------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self.previous is not None and self.previous.release_thread is not None:
                self.previous.release_thread.join()
            if self.previous is not None:
                self.machine_seconds = self.previous.machine_seconds
            self._provision()
            self._relay()
            self.ended_cleanly = True
        except Cancelled:
            self._teardown()
        except LitError as exc:
            self.failure = exc
            self._teardown()
        except Exception as exc:  # a bug or an unmapped error: fail the work with it, never hang
            self.failure = InfrastructureError(f"preparing {short_name(self.spec.work_name)} failed: "
                                               f"{type(exc).__name__}: {exc}")
            self._teardown()
        finally:
            if self.ssh is not None:
                self.ssh.close()
            try:
                self.sock.close()
            except OSError:
                pass

    def _known_hosts(self) -> Path:
        assert self.cluster is not None
        if self.lease is not None and self.lease.known_hosts:
            return Path(self.lease.known_hosts)
        return store.known_hosts_path(self.cluster.name)

    def _teardown(self) -> None:
        if self.agent_pid is not None and self.saw_bye is False and self.failure is not None:
            self._kill_remote()
        if self.lease is not None and self.lease.lease_dir and self.ssh is not None and self.agent_pid is None:
            for index in self.lease.gpu_ids:  # leased but no agent to free them
                try:
                    self.ssh.run(f"rm -rf {shlex.quote(self.lease.lease_dir)}/{index}", timeout=10)
                except LitError:
                    pass
        if self.lease is not None:
            self.launcher.add_load(self.lease.machine.id, -1)
            if self.lease.instance_type and self.machine_state == "running":
                # a machine made for this work that nobody released: never leave it running
                self.release_machine(terminate=not self.launcher.keep_machines)

    def _check_cancel(self) -> None:
        if self.cancelled:
            raise Cancelled("the app ended")
        readable, _, _ = select.select([self.sock], [], [], 0)
        if readable:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if not data:
                raise Cancelled("the app ended")

    def _provision(self) -> None:
        compute = self.spec.compute
        owner = f"{self.launcher.run_id}/{self.spec.work_name}"
        waiting = False
        while True:
            last_error: Optional[LitError] = None
            for cluster, provider in self.launcher.options(compute):
                if provider.can_ever_place(cluster, compute) is not None:
                    continue
                tried: set[str] = set()
                while True:
                    self._check_cancel()
                    machine = self.launcher.reserve(cluster, provider, compute, tried)
                    if machine is None:
                        break
                    placed = False
                    try:
                        placed = self._try_machine(cluster, provider, machine, owner)
                    except HostKeyChanged:
                        raise
                    except InfrastructureError as exc:
                        self.progress(f"{machine.target}: {exc}")  # a lost or refused host, named at once
                        last_error = exc
                    finally:
                        if not placed:
                            self.launcher.add_load(machine.id, -1)
                    if placed:
                        assert self.ssh is not None and self.lease is not None
                        self._prepare(self.ssh, self.lease)
                        return
            if last_error is not None:
                raise last_error
            if not waiting:
                need = f"{compute.gpus} free GPU(s)" if compute.gpus else "a free machine"
                self.progress(f"pending: waiting for {need}")
                waiting = True
            deadline = time.monotonic() + WAIT_RETRY_SECONDS
            while time.monotonic() < deadline:
                self._check_cancel()
                time.sleep(0.1)

    def _try_machine(self, cluster: Cluster, provider: Provider, machine: Machine, owner: str) -> bool:
        lease = provider.acquire(cluster, self.spec.compute, machine, self.launcher.run_id, self.spec.work_name,
                                 self.progress, app=self.launcher.app_name,
                                 made=lambda made: self.launcher.made_machine(cluster, provider, made))
        if lease is None:
            return False
        self.cluster, self.provider, self.lease = cluster, provider, lease
        if lease.instance_type:  # a machine made for this run: count its time until it is released
            self.running_since = time.monotonic()
        machine = lease.machine
        self.progress(f"connecting to {machine.target}")
        # A new instance takes a while to boot; a host of the user's answers at once or not at all.
        if lease.instance_type:
            ssh = self._first_contact(cluster, machine, deadline=time.monotonic() + max(300.0, self.orphan_timeout))
        else:
            wait_for_ssh(machine, timeout=min(60.0, self.orphan_timeout))
            ssh = SSH(machine, cluster.key_path, self._known_hosts(), keepalive=self.heartbeat)
        if lease.instance_type:
            self.progress("SSH ready")
        claimed = provider.claim(ssh, cluster, self.spec.compute, lease, owner)
        if claimed is None:
            ssh.close()
            provider.release(cluster, lease)
            self.cluster, self.provider, self.lease = None, None, None
            return False
        self.lease, self.ssh = claimed, ssh
        return True

    def _first_contact(self, cluster: Cluster, machine: Machine, deadline: float) -> SSH:
        """A booting instance: until its sshd answers with the pinned key. A wrong key is never accepted; while
        the machine boots (or its address still leads to its predecessor) lit waits, then names the error."""
        while True:
            self._check_cancel()  # each attempt is short (refused or unreachable at once): Ctrl-C is not held up
            try:
                return SSH(machine, cluster.key_path, self._known_hosts(), keepalive=self.heartbeat)
            except InfrastructureError as exc:
                if time.monotonic() > deadline:
                    cidr = cluster.settings.get("ssh_cidr")
                    if isinstance(exc, Unreachable) and cidr:
                        raise Unreachable(f"{exc}. SSH to cluster {cluster.name}'s machines is allowed from {cidr} "
                                          "only: if your public address has changed since, run `lit update "
                                          f"cluster {cluster.name}`") from None
                    raise
                time.sleep(0.2)

    def _prepare(self, ssh: SSH, lease: Lease) -> None:
        machine = lease.machine
        bundle = self.launcher.bundle
        q = shlex.quote
        # One round trip: where home is, and whether the bundle is there already.
        found = ssh.check(f'printf "%s\\n" "$HOME"; test -f "$HOME/.lit/bundles/{bundle.sha256}/.complete" && '
                          "echo have || echo need", "reading $HOME").split()
        home = found[0]
        bundle_dir = f"{home}/.lit/bundles/{bundle.sha256}"
        python = machine.python or "python3"
        work = short_name(self.spec.work_name)
        key = hashlib.sha1(f"{self.launcher.run_id}/{self.spec.work_name}".encode()).hexdigest()[:16]
        self.socket_path = f"{home}/.lit/agents/{key}.sock"
        run_root = f"{home}/.lit/runs/{self.launcher.run_id}"
        env = {"PYTHONPATH": f"{bundle_dir}/_lit", "PYTHONUNBUFFERED": "1",
               # GPU works see only their leased GPUs; CPU works see none.
               "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in lease.gpu_ids)}
        env_text = " ".join(f"{k}={q(v)}" for k, v in env.items())

        def start(python: str) -> str:
            return (f"mkdir -p {q(run_root)}/logs && cd {q(home)} && env {env_text} {q(python)} -m lit.runtime.agent "
                    f"detached --socket {q(self.socket_path)} --log {q(run_root)}/logs/{q(work)}.log")

        ship = f"mkdir -p {q(home)}/.lit/bundles && {q(python)} -c {q(EXTRACT)} {q(bundle_dir)}"
        venv = bool(bundle.requirements.strip())
        out: Optional[str] = None
        with self.launcher.host_lock(machine.id):  # works placed on one host share one upload
            if found[-1] == "have" or (machine.id, bundle.sha256) in self.launcher.shipped:
                self.progress("code already on the host")
            else:
                self._check_cancel()
                self.progress(f"shipping code ({bundle.size / 1024:.0f} KB)")
                if venv:
                    ssh.check(ship, "unpacking the code", stdin=bundle.data)
                else:  # one round trip: the code on stdin, unpacked, then the agent started
                    out = ssh.check(f"{ship} && {start(python)}", "unpacking the code and starting the agent",
                                    stdin=bundle.data)
                self.launcher.shipped.add((machine.id, bundle.sha256))
        if venv:
            python = self._venv(ssh, home, bundle_dir, python)
        if out is None:
            self._check_cancel()
            out = ssh.check(start(python), "starting the agent")
        words = out.split()
        if len(words) < 2 or words[0] != "ready":
            raise InfrastructureError(f"{machine.target}: the agent did not start: {out.strip()[:200]}")
        self.agent_pid = int(words[1])
        # The relay to the detached agent: a few lines of standard library (no lit import, no site), since every
        # connection and reconnection starts one.
        self.attach_command = f"{q(python)} -S -c {q(ATTACH)} {q(self.socket_path)}"
        leases = [f"{lease.lease_dir}/{i}" for i in lease.gpu_ids] if lease.lease_dir else []
        assert self.cluster is not None and self.provider is not None
        self._placement = Placement(  # the other works reach this one at its internal (private) address
            machine.internal_address, f"{run_root}/works/{work}", f"{bundle_dir}/app/{bundle.app_relpath}",
            machine.target,
            {"leases": leases, "poweroff": self.provider.poweroff_command(self.cluster, machine),
             "storage": self._storage(run_root),
             "bind_host": "0.0.0.0"},  # a work's server on its own machine serves the other works
        )
        self.progress(f"agent up on {machine.target}")

    def _storage(self, run_root: str) -> dict[str, str]:
        """Files between works: through an object store with presigned URLs where the cluster has one (aws),
        otherwise streamed through lit's own connections."""
        kind = "urls" if self.cluster is not None and self.cluster.settings.get("outputs", {}).get("bucket") \
            else "relay"
        return {"kind": kind, "cache": f"{run_root}/artifacts"}

    def _venv(self, ssh: SSH, home: str, bundle_dir: str, python: str) -> str:
        """The app's requirements.txt in a venv on the host, cached by the file's hash."""
        digest = hashlib.sha256(self.launcher.bundle.requirements.encode()).hexdigest()[:16]
        venv = f"{home}/.lit/venvs/{digest}"
        wheels = f"{bundle_dir}/app/wheels"
        q = shlex.quote
        # Stock Ubuntu and Debian images have no ensurepip (python3-venv is not installed), so `python3 -m venv`
        # fails there: make the venv without pip and install pip into it from a pip wheel, the app's own
        # (wheels/pip-*.whl) or the one lit brings in the bundle (_pip/), run from the wheel itself as ensurepip
        # does. No package is installed on the host and no sudo is needed.
        pip_from_wheel = (
            f"pipwhl=$(ls {q(wheels)}/pip-*.whl {q(bundle_dir)}/_pip/pip-*.whl 2>/dev/null | head -n 1) && "
            "if [ -z \"$pipwhl\" ]; then echo 'the host has no ensurepip (python3-venv) and no pip wheel came with "
            "the code: install python3-venv on the host or put a pip wheel in the app folder under wheels/' >&2; "
            f"exit 1; fi && {q(python)} -m venv --without-pip {q(venv)} && "
            f"PYTHONPATH=\"$pipwhl\" {q(venv)}/bin/python -m pip install -q --no-index --disable-pip-version-check "
            "\"$pipwhl\""
        )
        script = (
            f"if [ ! -f {q(venv)}/.complete ]; then rm -rf {q(venv)} && "
            f"if {q(python)} -c 'import ensurepip' 2>/dev/null; then {q(python)} -m venv {q(venv)}; "
            f"else {pip_from_wheel}; fi && "
            f"if [ -d {q(wheels)} ]; then idx='--no-index --find-links {wheels}'; else idx=''; fi && "
            f"{q(venv)}/bin/pip install -q --disable-pip-version-check $idx -r {q(bundle_dir)}/app/requirements.txt "
            f"&& touch {q(venv)}/.complete; fi"
        )
        code, _, _ = ssh.run(f"test -f {q(venv)}/.complete")
        if code != 0:
            self.progress("installing requirements.txt")
        ssh.check(f"mkdir -p {q(home)}/.lit/venvs && flock {q(venv)}.lock sh -c {q(script)}",
                  "installing requirements.txt", timeout=1800)
        return f"{venv}/bin/python"

    # -- relaying ---------------------------------------------------------------------------------
    def _open_channel(self) -> Any:
        assert self.cluster is not None and self.lease is not None
        if self.ssh is None:
            self.ssh = SSH(self.lease.machine, self.cluster.key_path, self._known_hosts(),
                           timeout=min(10.0, self.orphan_timeout / 2), keepalive=self.heartbeat)
        return self.ssh.channel(self.attach_command)

    def _reconnect(self, since: float, reason: str) -> Any:
        """A new channel to the agent, with backoff, until the orphan timeout since the last word from it."""
        assert self.lease is not None
        target = self.lease.machine.target
        self.progress(f"lost contact with {target} ({reason}); reconnecting")
        delay = 0.2
        while True:
            if self.ssh is not None:
                self.ssh.close()
                self.ssh = None
            try:
                channel = self._open_channel()
                self.progress(f"reconnected to {target}")
                return channel
            except HostKeyChanged:
                raise
            except InfrastructureError as exc:
                silent = time.monotonic() - since
                if silent > self.orphan_timeout:
                    raise Unreachable(f"{target} unreachable for {silent:.0f} s (orphan timeout "
                                      f"{self.orphan_timeout:.0f} s): {exc}") from None
            end = time.monotonic() + delay
            while time.monotonic() < end:  # keep draining the orchestrator's side: it is replayed later
                readable, _, _ = select.select([self.sock], [], [], max(0.0, end - time.monotonic()))
                if readable and not self.sock.recv(262144):
                    raise Cancelled("the app ended")
            delay = min(delay * 2, 5.0)

    def _relay(self) -> None:
        channel = self._open_channel()
        last_heard = time.monotonic()
        to_agent, from_agent = bytearray(), bytearray()  # partial lines (large frames arrive in many reads)
        synced = False  # until the orchestrator answers the agent's hello, what it sends is replayed later
        closing = False
        close_deadline = 0.0
        while True:
            readable, _, _ = select.select([self.sock, channel], [], [], 1.0)
            now = time.monotonic()
            if self.sock in readable and not closing:
                data = self.sock.recv(262144)
                if not data:
                    # lit is done with this work: pass on what it said (bye), then let the agent end.
                    closing = True
                    close_deadline = now + 3.0
                    try:
                        channel.shutdown_write()
                    except OSError:
                        pass  # already closed: the agent ends on its own
                elif b"\n" not in data:
                    to_agent += data
                else:
                    to_agent += data
                    *lines, rest = to_agent.split(b"\n")
                    to_agent = bytearray(rest)
                    for line in lines:
                        if not synced and b'"t":"hello"' in line:
                            synced = True
                        if synced:
                            try:
                                channel.sendall(line + b"\n")
                            except OSError:  # the channel closed under us: its end is read below, then handled
                                break
            if channel in readable:
                data = channel.recv(262144)
                if data and b"\n" not in data:
                    last_heard = now
                    from_agent += data
                elif data:
                    last_heard = now
                    from_agent += data
                    *lines, rest = from_agent.split(b"\n")
                    from_agent = bytearray(rest)
                    for line in lines:
                        if b'"t":"bye"' in line:
                            self.saw_bye = True
                        try:
                            self.sock.sendall(line + b"\n")
                        except OSError:
                            pass
                else:
                    status = channel.exit_status if channel.status_event.wait(1.0) else None
                    channel.close()
                    if closing or self.saw_bye or self.machine_state != "running":
                        return  # it ended as asked, or its machine was stopped after its last call
                    if status is not None and status >= 0:
                        target = self.lease.machine.target if self.lease else "its machine"
                        raise AgentGone(f"the agent on {target} ended without a word (killed?)")
                    channel = self._reconnect(last_heard, "connection closed")
                    to_agent, from_agent, synced = bytearray(), bytearray(), False
                    last_heard = time.monotonic()
                    continue
            if closing and now > close_deadline:
                channel.close()
                return
            if not closing and now - last_heard > 3 * self.heartbeat + 1:
                channel.close()  # a silent partition: nothing, not even heartbeats, for three beats
                channel = self._reconnect(last_heard, f"silent for {now - last_heard:.0f} s")
                to_agent, from_agent, synced = bytearray(), bytearray(), False

