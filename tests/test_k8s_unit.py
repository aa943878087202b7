"""The kubernetes provider's pure parts: pod manifests from the compute table, names and labels Kubernetes accepts,
and whether a node could ever run a pod. The provider against a real API server: tests/test_k8s_run.py."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from lit.runtime.compute import CloudCompute

DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
OWNER = {"apiVersion": "v1", "kind": "ConfigMap", "name": "lit-run-x", "uid": "u-1", "blockOwnerDeletion": False}


def manifest(compute: str, **kwargs: Any) -> dict[str, Any]:
    from lit.provisioner.kubernetes.pods import pod_manifest

    return pod_manifest("lit-a-b", "cluster-a", "hello_app-20261201-081500", "root.train", CloudCompute(compute),
                        "python:3.12-slim", "lit-cluster-a-work", OWNER, **kwargs)


def test_a_cpu_work_asks_for_its_compute_and_holds_no_token() -> None:
    pod = manifest("cpu")
    spec = pod["spec"]
    container = spec["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}}
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    assert "tolerations" not in spec and "nodeSelector" not in spec
    assert pod["metadata"]["ownerReferences"] == [OWNER]
    assert pod["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "lit", "lit/cluster": "cluster-a",
                                         "lit/run": "hello_app-20261201-081500", "lit/work": "root.train"}


def test_a_gpu_work_asks_for_the_gpu_and_tolerates_the_gpu_taint() -> None:
    spec = manifest("gpu-fast-multi", node_selector={"pool": "gpu"})["spec"]
    resources = spec["containers"][0]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "4"
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["nodeSelector"] == {"pool": "gpu"}


@pytest.mark.parametrize("text", ["root.train", "My App!" * 20, "-x-", "a" * 63, "a" * 64, "é"])
def test_label_values_are_valid_and_distinct(text: str) -> None:
    from lit.provisioner.kubernetes.pods import label_value

    value = label_value(text)
    assert LABEL_VALUE.match(value) and len(value) <= 63, value
    assert label_value(text + "x") != value


def test_object_names_are_dns_labels() -> None:
    from lit.provisioner.kubernetes.pods import object_name

    for parts in (("lit", "Cluster_A", "root.train", "abc123"), ("lit-run", "c", "x" * 200)):
        name = object_name(*parts)
        assert DNS_1123.match(name) and len(name) <= 63, name
    assert object_name("a", "b") != object_name("a", "c")


def node(allocatable: dict[str, str], taints: Any = None, labels: Any = None, unschedulable: bool = False) -> Any:
    return SimpleNamespace(metadata=SimpleNamespace(labels=labels or {}),
                           spec=SimpleNamespace(taints=taints, unschedulable=unschedulable),
                           status=SimpleNamespace(allocatable=allocatable))


def test_a_node_fits_by_allocatable_taints_and_labels() -> None:
    from lit.provisioner.kubernetes.cluster import node_fits
    from lit.provisioner.kubernetes.pods import resources

    cpu = resources(CloudCompute("cpu"))["requests"]
    gpu = resources(CloudCompute("gpu"))["requests"]
    small = node({"cpu": "4", "memory": "16Gi"})
    tainted = node({"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"},
                   taints=[SimpleNamespace(key="nvidia.com/gpu", effect="NoSchedule")], labels={"pool": "gpu"})
    assert node_fits(small, cpu, {}, False) and not node_fits(small, gpu, {}, True)
    assert node_fits(tainted, gpu, {}, True) and not node_fits(tainted, cpu, {}, False)
    assert not node_fits(small, cpu, {"pool": "gpu"}, False)
    assert not node_fits(node({"cpu": "4", "memory": "16Gi"}, unschedulable=True), cpu, {}, False)
    assert not node_fits(node({"cpu": "1500m", "memory": "64Gi"}), cpu, {}, False)  # 1.5 CPUs < 2


def test_reading_an_exec_stream_leaves_no_stdout_frame_behind() -> None:
    """The client's read_channel on an empty channel reads further frames itself (update(0)): a stdout frame it
    pulls in while stderr is read must be returned now, not after the next update's whole timeout."""
    from kubernetes.stream.ws_client import WSClient

    from lit.provisioner.kubernetes.execconn import STDOUT, _take

    class Frames(WSClient):  # the real read_channel and peek_channel over frames queued by the test
        def __init__(self) -> None:
            self._channels: dict[int, bytes] = {}
            self._closed_channels: set[int] = set()
            self.binary = True
            self.queued: list[tuple[int, bytes]] = []

        def update(self, timeout: float = 0) -> None:  # as the real one: every frame that has arrived, buffered
            for channel, data in self.queued:
                self._channels[channel] = self._channels.get(channel, b"") + data
            self.queued = []

    ws = Frames()
    ws.queued.append((STDOUT, b'{"stage":"running"}\n'))
    ws.update(1.0)
    ws.queued.append((STDOUT, b'{"stage":"succeeded"}\n'))  # arrives while lit reads the first
    out, err = _take(ws)
    assert out == b'{"stage":"running"}\n{"stage":"succeeded"}\n' and err == b""
    assert STDOUT not in ws._channels


def pod(phase: str = "Running", conditions: Any = (), deleting: bool = False, reason: str = "") -> Any:
    return SimpleNamespace(
        metadata=SimpleNamespace(deletion_timestamp="2026-12-01T00:00:00Z" if deleting else None),
        status=SimpleNamespace(phase=phase, reason=reason or None, message=None, container_statuses=None,
                               conditions=[SimpleNamespace(type=t, status="True", reason=r, message=m)
                                           for t, r, m in conditions]))


class Watched:
    """A PodWatch's reading side over one fixed state (the watch itself runs against the test cluster)."""

    def __init__(self, obj: Any, deleted: bool) -> None:
        self.obj, self.deleted = obj, deleted

    def wait(self, name: str, done: Any, timeout: float, seen: Any = None) -> bool:
        return bool(done(self.obj, self.deleted))

    def state(self, name: str) -> tuple[Any, bool]:
        return self.obj, self.deleted


def test_why_a_pod_went_under_a_running_work() -> None:
    from lit.provisioner.kubernetes.pods import lost

    evicted = pod(conditions=[("DisruptionTarget", "EvictionByEvictionAPI", "Eviction API: evicting")],
                  deleting=True)
    assert lost(Watched(evicted, False), "p", 0) == \
        "pod p is being deleted: EvictionByEvictionAPI: Eviction API: evicting"
    assert lost(Watched(evicted, True), "p", 0) == "pod p was deleted: EvictionByEvictionAPI: Eviction API: evicting"
    assert lost(Watched(pod("Failed", reason="Evicted"), False), "p", 0) == "pod p ended: Evicted"
    assert lost(Watched(pod(), True), "p", 0) == "pod p was deleted: deleted by someone other than lit"
    assert lost(Watched(pod(), False), "p", 0) is None  # still running: the stream dropped, lit reconnects
    assert lost(Watched(None, False), "p", 0) is None
