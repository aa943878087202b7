"""The cloud-neutral step order: acquire a machine, wait for SSH, ship code, start the agent, relay.

`ClusterLauncher` is the runtime's Launcher for `lit run --cloud`. Each work gets a thread (`RemoteAgent`,
remote.py) that prepares its machine (shipping.py) and then relays the protocol between a local socket (what the
orchestrator selects on) and an SSH channel to the agent (relay.py), reconnecting with backoff when the connection
drops. The orchestrator stays single-threaded and never learns which provider it got.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from lit.runtime.compute import CloudCompute
from lit.runtime.errors import InfrastructureError, LitError
from lit.runtime.transport import AgentSpec, Launched, Launcher, short_name

from . import bundle as bundles
from . import store
from .base import CannotPlace, Cluster, Lease, Machine, ObjectStore, Provider
from .connector import Connector
from .forward import Forward
from .registry import get_provider
from .relay import SocketTransport
from .remote import RemoteAgent

CLOSE_WAIT_SECONDS = 120.0  # at the end, how long to wait for machines still being prepared to be removed
CLOSE_TELL_SECONDS = 2.0  # ... and after how long to say so

Resolve = Callable[[str], tuple[Cluster, Provider]]


def app_identity(app_file: Path) -> str:
    """A stable name for the app across runs, `<stem>-<12 hex>`: its stem (most apps are `app.py`) plus a digest
    of this machine's name and the file's absolute path, so machines kept for one app (--keep-machines) are never
    taken by another app whose file or works have the same names. Editing the app keeps its identity."""
    where = f"{socket.gethostname()}:{app_file.resolve()}"
    return f"{app_file.stem}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"


def resolve_cluster(name: str) -> tuple[Cluster, Provider]:
    """A cluster's record under the lit home and its provider."""
    cluster = store.load(name)
    return cluster, get_provider(cluster.provider)


class ClusterLauncher(Launcher):
    """Starts each work's agent on a machine of a cluster (`--cloud NAME`, or the work's own clusters).

    `resolve` (a cluster's record and provider by name) and `connector` (how machines are reached) are the seams
    tests replace; by default they are the lit home's records, the registry's providers and SSH."""

    def __init__(self, default_cluster: str, run_id: str, app_file: Path, keep_machines: bool = False, *,
                 resolve: Resolve = resolve_cluster, connector: Optional[Connector] = None) -> None:
        self.run_id = run_id
        self.app_name = app_identity(Path(app_file))
        self.keep_machines = keep_machines
        self.default = default_cluster
        self.resolve = resolve
        self.connector_override = connector
        self.ssh_connector = Connector()
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
        # (work, port) -> its forward: made by forward() (the dashboard's thread), ended with the work's machine
        self.forwards: dict[tuple[str, int], Forward] = {}
        self.forward_lock = threading.Lock()  # held while a forward connects, so a (work, port) gets one
        self.forwards_closed = False
        self.forward_epochs: dict[str, int] = {}  # per work: bumped when its forwards end

    def connector_for(self, cluster: Cluster, provider: Provider) -> Connector:
        """How this run reaches the cluster's machines: the test's seam, else the provider's, else SSH."""
        return self.connector_override or provider.connector(cluster) or self.ssh_connector

    def _cluster(self, name: str) -> tuple[Cluster, Provider]:
        if name not in self.clusters:
            self.clusters[name] = self.resolve(name)
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
        self._end_forwards(work_name)  # its agent ended: what it served is gone, and its machine may go too
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

    def forward(self, work_name: str, port: int) -> Optional[tuple[str, int]]:
        """(127.0.0.1, local port): connections to it reach 127.0.0.1:`port` on the work's machine (a work's server
        binds 0.0.0.0 there) through lit's own connection to it: an SSH direct-tcpip channel on a connection of
        the forward's own, or the API server's pods/portforward for a pod. One listening socket per (work, port),
        on 127.0.0.1 only, reused by later calls; it ends when the work's agent ends (its machine may be released)
        and at close().

        None where the work has no machine up (not placed yet, its agent ended, the run is ending) or lit cannot
        reach the machine's ports (a connector of tests'). Raises InfrastructureError where the machine is up but
        lit cannot connect to it now. A connection to the local port whose remote end cannot be opened (nothing
        listens there yet) is closed at once. Thread-safe."""
        with self.lock:
            remote = self.remotes.get(work_name)
        if remote is None or remote.lease is None or remote.cluster is None or remote.provider is None:
            return None
        if remote.machine_state != "running" or remote.failure is not None or not remote.is_alive():
            return None
        cluster, provider, lease = remote.cluster, remote.provider, remote.lease
        key = (work_name, port)
        with self.forward_lock:
            if self.forwards_closed:
                return None
            existing = self.forwards.get(key)
            if existing is not None and existing.machine_id == lease.machine.id:
                return existing.address
            epoch = self.forward_epochs.get(work_name, 0)
        # Connecting takes a round trip or more: not under the lock, which release() (the orchestrator's loop) takes.
        connection = self.connector_for(cluster, provider).connect(
            lease.machine, cluster.key_path, remote.known_hosts(), timeout=10.0, keepalive=remote.heartbeat)
        if not connection.tunnels:
            connection.close()
            return None
        try:
            made = Forward(short_name(work_name), port, connection.tunnel, lease.machine.id, on_close=connection.close)
        except OSError as exc:
            connection.close()
            raise InfrastructureError(f"cannot listen on 127.0.0.1 for {short_name(work_name)}: {exc}") from None
        keep: Optional[Forward]
        drop: Optional[Forward]
        with self.forward_lock:
            existing = self.forwards.get(key)
            if self.forwards_closed or self.forward_epochs.get(work_name, 0) != epoch:
                keep, drop = None, made  # the run is ending, or the work's agent ended while we connected
            elif existing is not None and existing.machine_id == lease.machine.id:
                keep, drop = existing, made  # another thread made this forward first
            else:
                self.forwards[key] = made
                keep, drop = made, existing  # the forward to the work's previous machine, if any, ends
        if drop is not None:
            drop.close()
        return keep.address if keep is not None else None

    def _end_forwards(self, work_name: Optional[str] = None) -> None:
        """End the forwards of one work (all, for None): their listening sockets close, their relays end."""
        with self.forward_lock:
            if work_name is not None:  # a forward being made for the work's agent that ended is not kept
                self.forward_epochs[work_name] = self.forward_epochs.get(work_name, 0) + 1
            ending = [key for key in self.forwards if work_name is None or key[0] == work_name]
            forwards = [self.forwards.pop(key) for key in ending]
        for one in forwards:
            one.close()

    # -- the object store (where the work's cluster has one: files between works through presigned URLs) ----
    def object_store(self, cluster: Cluster, provider: Provider) -> Optional[ObjectStore]:
        """The cluster's store for this run, asked of its provider each time (its credentials may rotate)."""
        return provider.object_store(cluster, self.run_id)

    def _store(self, work_name: str) -> ObjectStore:
        with self.lock:
            remote = self.remotes.get(work_name)
        name = remote.cluster.name if remote is not None and remote.cluster is not None else self.default
        cluster, provider = self._cluster(name)
        found = self.object_store(cluster, provider)
        if found is None:
            raise InfrastructureError(f"cluster {cluster.name} has no object store")
        return found

    def presign(self, work_name: str, op: str, key: str) -> str:
        """A URL valid for a few minutes to put or get exactly one object (machines hold no cloud credentials)."""
        return self._store(work_name).presign(op, key)

    def store_list(self, work_name: str, prefix: str) -> list[str]:
        """The keys, as works name them ("drives/NAME/..."), of the objects that start with `prefix`."""
        return self._store(work_name).list(prefix)

    def store_delete(self, work_name: str, key: str) -> bool:
        """Delete one object; False if there is none."""
        return self._store(work_name).delete(key)

    def machine_report(self) -> dict[str, dict[str, Any]]:
        """Per work: instance type, machine seconds and cost (for the run summary)."""
        with self.lock:
            return {name: report for name, report in self.reports.items()}

    @property
    def cluster_name(self) -> Optional[str]:
        return self.default

    def ending(self, progress: Callable[[str, str], None]) -> None:
        self.direct_progress = progress

    def close(self, hurry: Optional[Callable[[], bool]] = None) -> None:
        """The app ended: cancel the machines still being prepared, wait for each work's thread to remove its
        machine, then remove any machine made that no thread removed (one that never became ready). A second
        signal (`hurry`) stops the waiting: what is still up is then listed by still_up()."""
        hurried = hurry or (lambda: False)
        with self.forward_lock:
            self.forwards_closed = True  # nothing is listening for this run once it has ended
        self._end_forwards()
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
        for remote in threads:
            killing = remote.kill_thread
            while killing is not None and killing.is_alive() and not hurried() and time.monotonic() < deadline:
                killing.join(0.1)
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
            self.forget_machine(lease.machine.id)
        for cluster, provider in list(self.clusters.values()):
            if hurried():
                return
            try:
                provider.end_run(cluster, self.run_id)
            except LitError as exc:
                if self.direct_progress is not None:
                    self.direct_progress(cluster.name, f"could not remove what run {self.run_id} made: {exc}")

    def still_up(self) -> list[str]:
        """Machines this run started that are not known to be stopped or terminated."""
        with self.lock:
            return sorted(self.up)

    def leftovers(self) -> list[str]:
        """Per cluster with machines still up: their ids and how its provider says to remove them."""
        with self.lock:
            left = [(cluster, provider, mid) for mid, (cluster, provider, _) in sorted(self.up.items())]
        by_cluster: dict[str, tuple[Cluster, Provider, list[str]]] = {}
        for cluster, provider, mid in left:
            by_cluster.setdefault(cluster.name, (cluster, provider, []))[2].append(mid)
        return [f"still up: {' '.join(ids)}. {provider.leftover_hint(cluster, ids)}"
                for cluster, provider, ids in by_cluster.values()]

    # -- what each work's thread tells the launcher -----------------------------------------------
    def made_machine(self, cluster: Cluster, provider: Provider, lease: Lease) -> None:
        """A provider made (or started again) a machine for a work: it is ours to remove from now on."""
        with self.lock:
            self.up[lease.machine.id] = (cluster, provider, lease)

    def forget_machine(self, machine_id: str) -> None:
        """A machine of this run is gone (or kept stopped at the end, as asked): nothing is left to remove."""
        with self.lock:
            self.up.pop(machine_id, None)

    def record_machine(self, work_name: str, lease: Lease, seconds: float, stops: list[tuple[float, float]]) -> None:
        """A work's machine time so far, for machine_report(); stops (asked, accepted) add to those known."""
        with self.lock:
            earlier = self.reports.get(work_name, {}).get("stops", [])
            merged = earlier + [list(s) for s in stops if list(s) not in earlier]
            self.reports[work_name] = {
                "machine": lease.machine.id, "instance_type": lease.instance_type, "seconds": seconds,
                "cost": seconds / 3600 * lease.price_per_hour, "stops": merged}

    def host_lock(self, machine_id: str) -> threading.Lock:
        with self.lock:
            return self.host_locks.setdefault(machine_id, threading.Lock())

    def has_shipped(self, machine_id: str, sha256: str) -> bool:
        with self.lock:
            return (machine_id, sha256) in self.shipped

    def mark_shipped(self, machine_id: str, sha256: str) -> None:
        with self.lock:
            self.shipped.add((machine_id, sha256))

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

