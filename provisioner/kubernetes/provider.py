"""The kubernetes provider: each work is a pod on the team's cluster, placed by the cluster's own scheduler and
reached through its API server (pods/exec); a GPU work's pod is deleted the moment its work is done."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Callable, Optional

from lit.runtime.compute import COMPUTE_NAMES, CloudCompute
from lit.runtime.errors import BadInput, LitError

from ..base import Cluster, Created, Lease, Listing, Machine, Options, Progress, Provider
from ..connector import Connector
from . import cluster as clusters
from . import pods
from .client import Api, connect, mapped
from .execconn import ExecConnector
from .watch import PodWatch

PENDING_TIMEOUT_SECONDS = 300.0  # a pod still unscheduled after this long fails its work, with the scheduler's reason
DELETE_WAIT_SECONDS = 60.0


class KubernetesProvider(Provider):
    name = "kubernetes"
    release_removes = True  # a released pod is deleted

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._apis: dict[str, Api] = {}
        self._owners: dict[tuple[str, str], dict[str, Any]] = {}
        self._owner_locks: dict[tuple[str, str], threading.Lock] = {}
        self._nodes: dict[str, Optional[list[Any]]] = {}
        self._watches: dict[str, PodWatch] = {}

    def api(self, cluster: Cluster) -> Api:
        with self._lock:
            if cluster.name not in self._apis:
                s = cluster.settings
                self._apis[cluster.name] = connect(s.get("kubeconfig") or None, s.get("context") or None,
                                                   s["namespace"])
            return self._apis[cluster.name]

    def watch(self, cluster: Cluster) -> PodWatch:
        """The cluster's lit pods, watched from the first work placed until the run ends."""
        api = self.api(cluster)
        with self._lock:
            if cluster.name not in self._watches:
                self._watches[cluster.name] = PodWatch(api.own(), clusters.selector(cluster.name))
            return self._watches[cluster.name]

    # -- clusters -----------------------------------------------------------------------------------
    def create(self, name: str, options: Options, orphan_timeout: float, progress: Progress) -> Created:
        created = clusters.create(name, options, orphan_timeout, progress)
        s = created.settings
        return Created(created, f"in namespace {s['namespace']} of {s['context']}")

    def delete(self, cluster: Cluster, options: Options, progress: Progress) -> None:
        clusters.delete(cluster, progress)

    def describe(self, cluster: Cluster) -> Listing:
        where = f"{cluster.settings.get('context', '?')}/{cluster.settings.get('namespace', '?')}"
        try:
            return Listing(where, f"{len(self.list_running(cluster))} pods")
        except LitError as exc:
            return Listing(where, f"? ({exc})")

    def policy(self, options: Options) -> list[tuple[str, Any]]:
        return clusters.policies(options.get("namespace") or "default")

    # -- placing works ------------------------------------------------------------------------------
    def can_ever_place(self, cluster: Cluster, compute: CloudCompute) -> Optional[str]:
        nodes = self._readable_nodes(cluster)
        if nodes is None:
            return None  # nodes cannot be read with the user's rights: the pending timeout decides
        need = pods.resources(compute)["requests"]
        selector = cluster.settings.get("node_selector") or {}
        if not any(clusters.node_fits(node, need, selector, bool(COMPUTE_NAMES[compute.name].gpus))
                   for node in nodes):
            wants = ", ".join(f"{k}={v}" for k, v in need.items())
            return (f"no node of cluster {cluster.name} could ever run CloudCompute({compute.name!r}) "
                    f"({wants}{', on nodes ' + str(selector) if selector else ''})")
        return None

    def _readable_nodes(self, cluster: Cluster) -> Optional[list[Any]]:
        with self._lock:
            if cluster.name in self._nodes:
                return self._nodes[cluster.name]
        nodes = clusters.nodes_if_readable(self.api(cluster))
        with self._lock:
            self._nodes[cluster.name] = nodes
        return nodes

    def candidates(self, cluster: Cluster, compute: CloudCompute, load: dict[str, int]) -> list[Machine]:
        return [Machine(f"pod:new:{compute.name}", "", "", port=0)]  # made on demand; the cluster's scheduler places it

    def acquire(self, cluster: Cluster, compute: CloudCompute, machine: Machine, run_id: str, work: str,
                progress: Progress, app: str = "", made: Optional[Callable[[Lease], None]] = None,
                cancelled: Optional[Callable[[], bool]] = None) -> Optional[Lease]:
        api = self.api(cluster)
        s = cluster.settings
        owner = self._owner(cluster, run_id)
        watch = self.watch(cluster)
        gpus = COMPUTE_NAMES[compute.name].gpus
        name = pods.object_name("lit", cluster.name, work.split(".")[-1], uuid.uuid4().hex[:6])
        image = (s.get("gpu_image") if gpus else None) or s["image"]
        manifest = pods.pod_manifest(name, cluster.name, run_id, work, compute, image,
                                     (s.get("outputs") or {}).get("serviceAccount", "default"), owner,
                                     s.get("node_selector") or None)
        pending_timeout = float(s.get("pending_timeout") or PENDING_TIMEOUT_SECONDS)
        started = time.monotonic()
        stop = cancelled or (lambda: False)
        if not pods.create(api, manifest, pending_timeout, progress, stop):
            return None
        progress(f"requested pod {name} ({compute.name})")
        lease = self._lease(cluster, compute, name, "", "")
        if made is not None:
            made(lease)
        pod = pods.wait_running(watch, name, max(0.0, pending_timeout - (time.monotonic() - started)), progress, stop)
        if pod is None:  # the app ended while the pod waited: lit removes it with the run's other machines
            return None
        progress(f"running: pod {name} on node {pod.spec.node_name} at {pod.status.pod_ip}")
        return self._lease(cluster, compute, name, pod.status.pod_ip, pod.spec.node_name or "")

    def _lease(self, cluster: Cluster, compute: CloudCompute, name: str, ip: str, node: str) -> Lease:
        spec = COMPUTE_NAMES[compute.name]
        # The pod's IP is where the run's other works reach it; lit itself goes through the API server.
        machine = Machine(name, ip or name, "", 0, spec.vcpus, spec.memory_gib * 1024, spec.gpus, "running",
                          "python3", ip or name)
        return Lease(cluster.name, machine, tuple(range(spec.gpus)), None, None, f"pod ({compute.name})", 0.0,
                     fresh_home=pods.HOME)  # a new pod each time: its HOME is an empty emptyDir

    def _owner(self, cluster: Cluster, run_id: str) -> dict[str, Any]:
        """The run's owner object and network policy, made once per run (works are placed concurrently)."""
        key = (cluster.name, run_id)
        with self._lock:
            lock = self._owner_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._owners:
                owner = pods.run_owner(self.api(cluster), cluster.name, run_id)
                clusters.run_network_policy(self.api(cluster), cluster.name, run_id, owner)
                self._owners[key] = owner
            return self._owners[key]

    def idle_delay(self, cluster: Cluster, compute: CloudCompute) -> Optional[float]:
        """After a work's last call: a GPU work's pod goes at once (the GPU returns to the cluster)."""
        if compute.idle_timeout is not None:
            return float(compute.idle_timeout)
        return 0.0 if COMPUTE_NAMES[compute.name].gpus else None

    def release(self, cluster: Cluster, lease: Lease) -> None:
        """Delete the work's pod (and wait until it is gone): between calls and at the end (the base's
        terminate) alike, since a pod cannot be stopped and started again."""
        pods.delete(self.api(cluster), lease.machine.id, self.watch(cluster), wait=DELETE_WAIT_SECONDS)

    def lost(self, cluster: Cluster, lease: Lease, settle: float) -> Optional[str]:
        """An evicted or preempted pod, one deleted by someone else, or one whose container ended: Kubernetes'
        reason (from the run's pod watch)."""
        return pods.lost(self.watch(cluster), lease.machine.id, settle)

    def release_note(self, terminated: bool) -> str:
        return "pod deleted"

    def end_run(self, cluster: Cluster, run_id: str) -> None:
        with self._lock:
            owner = self._owners.pop((cluster.name, run_id), None)
            watch = self._watches.pop(cluster.name, None)
        if watch is not None:
            watch.close()
        if owner is not None:  # what is left of the run (a pod nobody could delete) goes with its owner
            clusters.delete_run_owner(self.api(cluster), owner["name"])

    def poweroff_command(self, cluster: Cluster, machine: Machine) -> Optional[list[str]]:
        return ["kill", "-TERM", "1"]  # the pod's first process ends, so the pod does (restartPolicy: Never)

    def list_running(self, cluster: Cluster) -> list[Machine]:
        api = self.api(cluster)
        with mapped("listing pods"):
            found = api.core.list_namespaced_pod(api.namespace, label_selector=clusters.selector(cluster.name))
        return [Machine(p.metadata.name, p.status.pod_ip or "", "", 0, state=(p.status.phase or "").lower())
                for p in found.items]

    def connector(self, cluster: Cluster) -> Optional[Connector]:
        return ExecConnector(self.api(cluster))

    def leftover_hint(self, cluster: Cluster, machine_ids: list[str]) -> str:
        ns = cluster.settings.get("namespace", "default")
        return f"Remove them with `kubectl delete pod -n {ns} {' '.join(machine_ids)}`"


def check_max_gpus(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise BadInput(f"--max-gpus {value!r}: expected a whole number of GPUs, 1 or more")
    return int(value)
