"""The Kubernetes test cluster (tests/k8s): control plane, test nodes, pods, exec and logs through the API server.

Each test works in a namespace of its own on the session's cluster (the `k8s_cluster` fixture, tests/conftest.py),
through the Python `kubernetes` client, as lit's provider will.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.cluster import Cluster, NodeSpec, k8s_cluster_fixture
from tests.support import wait_for
from tests.testbed import _proc_start

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402
from kubernetes.stream import stream  # noqa: E402

GPU = "nvidia.com/gpu"


@pytest.fixture(scope="module")
def core(k8s_cluster: Cluster) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(str(k8s_cluster.admin_kubeconfig)))


@pytest.fixture
def ns(core: client.CoreV1Api) -> Iterator[str]:
    name = "t-" + secrets.token_hex(4)
    core.create_namespace({"metadata": {"name": name}})
    # Pods are refused until the service account controller made the namespace's `default` account.
    wait_for(lambda: any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items),
             30, f"the default service account of {name}")
    yield name
    core.delete_namespace(name)


def pod(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "ignored", "command": command}
    container.update(spec.pop("container", {}))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [container], **spec}}


def phase(core: client.CoreV1Api, ns: str, name: str) -> str:
    return str(core.read_namespaced_pod(name, ns).status.phase)


def gone(core: client.CoreV1Api, ns: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, ns)
    except ApiException as e:
        return e.status == 404
    return False


def pid_of(cluster: Cluster, ns: str, name: str) -> tuple[int, int]:
    found = cluster.pod_pid(ns, name)
    assert found is not None, f"no PID 1 recorded for pod {ns}/{name}"
    return found


def alive(pid: int, start: int) -> bool:
    return _proc_start(pid) == start


def test_three_nodes_are_ready_and_one_has_a_gpu(k8s_cluster: Cluster, core: client.CoreV1Api) -> None:
    assert k8s_cluster.ready_nodes() == ["cpu-1", "cpu-2", "gpu-1"]
    nodes = {n.metadata.name: n for n in core.list_node().items}
    gpu = nodes["gpu-1"]
    assert gpu.status.capacity[GPU] == "1" and gpu.status.allocatable[GPU] == "1"
    assert gpu.metadata.labels["lit.test/gpu"] == "true"
    assert [(t.key, t.value, t.effect) for t in gpu.spec.taints] == [(GPU, "present", "NoSchedule")]
    assert GPU not in nodes["cpu-1"].status.capacity
    assert all(n.status.addresses[0].address == "127.0.0.1" for n in nodes.values())


def test_a_pod_runs_on_a_cpu_node_and_its_logs_arrive(k8s_cluster: Cluster, core: client.CoreV1Api, ns: str) -> None:
    env = [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    core.create_namespaced_pod(ns, pod("hello", ["sh", "-c", 'echo "hello from $POD/$NS in $(pwd)"; hostname'],
                                       container={"workingDir": "/tmp/work", "env": env}))
    wait_for(lambda: phase(core, ns, "hello") == "Succeeded", 30, "the pod to succeed")
    p = core.read_namespaced_pod("hello", ns)
    assert p.spec.node_name in ("cpu-1", "cpu-2")
    assert ipaddress.ip_address(p.status.pod_ip) in ipaddress.ip_network(k8s_cluster.node(p.spec.node_name).pod_cidr)
    term = p.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (0, "Completed")
    assert core.read_namespaced_pod_log("hello", ns) == f"hello from hello/{ns} in /tmp/work\nhello\n"


def test_a_failing_command_fails_the_pod_with_its_exit_code(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, pod("fails", ["sh", "-c", "echo oops >&2; exit 7"]))
    wait_for(lambda: phase(core, ns, "fails") == "Failed", 30, "the pod to fail")
    term = core.read_namespaced_pod("fails", ns).status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (7, "Error")
    assert core.read_namespaced_pod_log("fails", ns) == "oops\n"


def test_logs_follow_a_running_container_to_its_end(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, pod("ticker", ["sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.5; done"]))
    wait_for(lambda: phase(core, ns, "ticker") in ("Running", "Succeeded"), 30, "the pod to start")
    resp = core.read_namespaced_pod_log("ticker", ns, follow=True, _preload_content=False)
    try:
        assert resp.data.decode() == "tick 1\ntick 2\ntick 3\n"  # read to the end: the stream ends with the container
    finally:
        resp.release_conn()
    assert core.read_namespaced_pod_log("ticker", ns, tail_lines=1) == "tick 3\n"


def test_restart_policy_on_failure_runs_the_container_again(core: client.CoreV1Api, ns: str) -> None:
    # /run/lit-pod is the node's directory for the pod: it outlives the container's restarts.
    core.create_namespaced_pod(ns, pod("retry", ["sh", "-c", "[ -e /run/lit-pod/tried ] && echo second && exit 0; "
                                                 "touch /run/lit-pod/tried; echo first; exit 3"],
                                       restartPolicy="OnFailure"))
    wait_for(lambda: phase(core, ns, "retry") == "Succeeded", 30, "the pod to succeed on its second run")
    status = core.read_namespaced_pod("retry", ns).status.container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 3
    assert core.read_namespaced_pod_log("retry", ns) == "first\nsecond\n"


def gpu_pod(name: str, gpus: int) -> dict[str, Any]:
    return pod(name, ["sh", "-c", "echo devices=$NVIDIA_VISIBLE_DEVICES"],
               container={"resources": {"limits": {GPU: str(gpus)}}},
               tolerations=[{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}])


def test_a_pod_asking_for_a_gpu_lands_on_the_gpu_node(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, gpu_pod("trainer", 1))
    wait_for(lambda: phase(core, ns, "trainer") == "Succeeded", 30, "the GPU pod to succeed")
    assert core.read_namespaced_pod("trainer", ns).spec.node_name == "gpu-1"
    assert core.read_namespaced_pod_log("trainer", ns) == "devices=GPU-lit-gpu-1-0\n"


def test_a_pod_asking_for_two_gpus_stays_pending_with_the_schedulers_reason(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, gpu_pod("greedy", 2))

    def unschedulable() -> Any:
        conds = core.read_namespaced_pod("greedy", ns).status.conditions or []
        return next((c for c in conds if c.type == "PodScheduled" and c.reason == "Unschedulable"), None)

    cond = wait_for(unschedulable, 30, "the scheduler's verdict")
    assert phase(core, ns, "greedy") == "Pending"
    assert cond.message.startswith("0/3 nodes are available:")
    assert "Insufficient nvidia.com/gpu" in cond.message


def test_exec_through_the_api_server_streams_stdin_and_stdout_both_ways(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, pod("shell", ["sleep", "600"], container={"env": [{"name": "GREETING",
                                                                                       "value": "hi"}]}))
    wait_for(lambda: phase(core, ns, "shell") == "Running", 30, "the pod to run")
    session = stream(core.connect_get_namespaced_pod_exec, "shell", ns, container="main",
                     command=["sh", "-c", 'while read -r line; do echo "$GREETING:$line"; done; echo bye >&2; exit 5'],
                     stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    try:
        # One line at a time, each answer read before the next line is sent: a conversation, not a batch.
        for i in range(3):
            session.write_stdin(f"line {i}\n")
            got = ""
            deadline = time.monotonic() + 10
            while not got.endswith("\n") and time.monotonic() < deadline:
                session.update(timeout=1)
                got += session.read_stdout(timeout=0.1) or ""
            assert got == f"hi:line {i}\n"
        assert session.subprotocol == "v5.channel.k8s.io"
        session.close_channel(0)  # v5: stdin ends (as kubectl exec -i at the end of its input)
        session.run_forever(timeout=10)
        assert session.read_stderr() == "bye\n"
        assert session.returncode == 5
    finally:
        close(session)


def close(session: Any) -> None:
    """Close an exec session and its socket (websocket-client leaves the socket open when the server closed first)."""
    session.close()
    session.sock.shutdown()


def test_exec_sees_the_pods_own_namespaces(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, pod("box", ["sleep", "600"]))
    wait_for(lambda: phase(core, ns, "box") == "Running", 30, "the pod to run")
    ip = core.read_namespaced_pod("box", ns).status.pod_ip
    out, _, rc = run_exec(core, ns, "box", ["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                                           "ip -4 -o addr show eth0; touch /usr/lit-probe 2>&1 || echo read-only; "
                                           "reboot && cat /run/lit-pod/events"])
    assert rc == 0
    lines = out.splitlines()
    assert "pod-init" in lines[0]  # PID 1 of the pod's own PID namespace
    assert f"inet {ip}/20" in lines[1]
    assert "Read-only file system" in out and "read-only" in out
    assert lines[-1].endswith("\treboot")  # the stand-in recorded it; the machine is still here


def run_exec(core: client.CoreV1Api, ns: str, name: str, command: list[str]) -> tuple[str, str, int]:
    """(stdout, stderr, exit code) of a command run in the pod through the API server (its socket closed after)."""
    session = stream(core.connect_get_namespaced_pod_exec, name, ns, command=command, stdin=False, stdout=True,
                     stderr=True, tty=False, _preload_content=False)
    try:
        session.run_forever(timeout=30)
        return session.read_stdout(), session.read_stderr(), session.returncode
    finally:
        close(session)


def test_deleting_a_pod_kills_its_processes(k8s_cluster: Cluster, core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, pod("doomed", ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; "
                                                  "while true; do sleep 0.1; done"]))
    wait_for(lambda: phase(core, ns, "doomed") == "Running", 30, "the pod to run")
    pid, start = pid_of(k8s_cluster, ns, "doomed")
    assert alive(pid, start)
    core.delete_namespaced_pod("doomed", ns, grace_period_seconds=5)
    wait_for(lambda: gone(core, ns, "doomed"), 20, "the pod object to go")
    assert not alive(pid, start)


def test_a_pod_that_ignores_sigterm_is_killed_after_its_grace_period(k8s_cluster: Cluster, core: client.CoreV1Api,
                                                                     ns: str) -> None:
    core.create_namespaced_pod(ns, pod("stubborn", ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]))
    wait_for(lambda: phase(core, ns, "stubborn") == "Running", 30, "the pod to run")
    pid, start = pid_of(k8s_cluster, ns, "stubborn")
    began = time.monotonic()
    core.delete_namespaced_pod("stubborn", ns, grace_period_seconds=2)
    wait_for(lambda: gone(core, ns, "stubborn"), 20, "the pod object to go")
    assert time.monotonic() - began >= 1.5
    assert not alive(pid, start)


def test_the_garbage_collector_deletes_a_pod_owned_by_a_deleted_configmap(k8s_cluster: Cluster,
                                                                          core: client.CoreV1Api, ns: str) -> None:
    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    body = pod("owned", ["sleep", "600"])
    body["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                            "uid": owner.metadata.uid}]
    core.create_namespaced_pod(ns, body)
    wait_for(lambda: phase(core, ns, "owned") == "Running", 30, "the pod to run")
    pid, start = pid_of(k8s_cluster, ns, "owned")
    core.delete_namespaced_config_map("owner", ns)
    wait_for(lambda: gone(core, ns, "owned"), 60, "the garbage collector to delete the pod")
    assert not alive(pid, start)


def test_a_user_without_rbac_gets_403_and_rbac_lets_a_user_in(k8s_cluster: Cluster, ns: str) -> None:
    user = client.CoreV1Api(config.new_client_from_config(str(k8s_cluster.user_kubeconfig("lit-user"))))
    with pytest.raises(ApiException) as refused:
        user.list_namespaced_pod(ns)
    assert refused.value.status == 403
    assert 'User "lit-user" cannot list resource "pods"' in json.loads(refused.value.body)["message"]

    rbac = client.RbacAuthorizationV1Api(config.new_client_from_config(str(k8s_cluster.admin_kubeconfig)))
    rbac.create_namespaced_role_binding(ns, {
        "metadata": {"name": "bob-edits"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                       "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]})
    bob = client.CoreV1Api(config.new_client_from_config(str(k8s_cluster.user_kubeconfig("bob"))))
    # The binding reaches the authorizer's cache (and `edit` its aggregated rules) within moments.
    wait_for(lambda: _can_list(bob, ns), 30, "bob's RoleBinding to take effect")
    with pytest.raises(ApiException) as elsewhere:
        bob.list_namespaced_pod("default")
    assert elsewhere.value.status == 403


def _can_list(api: client.CoreV1Api, ns: str) -> bool:
    try:
        api.list_namespaced_pod(ns)
    except ApiException:
        return False
    return True


@pytest.fixture
def solo_cluster() -> Iterator[Cluster]:
    """A cluster of its own (one node), for the test that takes it down."""
    yield from k8s_cluster_fixture((NodeSpec("solo"),))


def test_down_leaves_nothing_behind(solo_cluster: Cluster) -> None:
    core = client.CoreV1Api(config.new_client_from_config(str(solo_cluster.admin_kubeconfig)))
    core.create_namespaced_pod("default", pod("left", ["sleep", "600"]))
    wait_for(lambda: phase(core, "default", "left") == "Running", 30, "the pod to run")
    pid, start = pid_of(solo_cluster, "default", "left")
    procs = [(p["pid"], p["start"]) for p in solo_cluster.processes]
    bridge = solo_cluster.bridge
    veths = [d.name for d in Path(f"/sys/class/net/{bridge}/brif").iterdir()]
    assert veths and Path(f"/sys/class/net/{bridge}").exists()
    solo_cluster.down()
    assert solo_cluster.leftovers() == []
    assert not alive(pid, start) and not any(alive(p, s) for p, s in procs)
    assert not any(Path(f"/sys/class/net/{name}").exists() for name in [bridge, *veths])
    assert not solo_cluster.dir.exists()
    assert not os.path.exists(solo_cluster.admin_kubeconfig)
