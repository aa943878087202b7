"""`--provider kubernetes` end to end on the test cluster (tests/k8s): a real kube-apiserver with RBAC, scheduler and
controller manager built from the Go modules, and three test nodes (gpu-1 advertises nvidia.com/gpu).

lit runs as `lit-user`, bound only to the Role `lit cluster policy --provider kubernetes` prints (plus the optional
node-reading ClusterRole). Each test gets its own namespace and LIT_HOME; after each, nothing labelled by lit is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import LitCli, wait_for
from tests.support import wait_line as _wait_line

REPO = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "remote_apps"
ORPHAN = 8  # seconds: short, so the orphan test ends quickly
LIT_USER = "lit-user"
MANAGED = "app.kubernetes.io/managed-by=lit"


def _ok(result: tuple[int, Any], what: str) -> Any:
    status, body = result
    assert status in (200, 201), f"{what}: {status} {body}"
    return body


class Kube(LitCli):
    """One test's namespace on the shared test cluster, with lit-user bound to what lit prints, and the lit CLI."""

    timeout = 120

    def __init__(self, cluster: Any, tmp_path: Path) -> None:
        python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        super().__init__(tmp_path, {**os.environ, "LIT_HOME": str(tmp_path / "home"),
                                    "LIT_STACK_ENGINE": "tests.k8s.engine:KubeEngine", "PYTHONPATH": python_path})
        self.cluster = cluster
        self.ns = f"lit-t{uuid.uuid4().hex[:8]}"
        _ok(cluster.api("POST", "/api/v1/namespaces", {"metadata": {"name": self.ns}}), "namespace")

    def grant(self, user: str = LIT_USER, drop: tuple[str, str] = ("", "")) -> None:
        """Bind `user` to the Role `lit cluster policy` prints (without the verb `drop` = (verb, resource))."""
        printed = self("cluster", "policy", "--provider", "kubernetes", "--namespace", self.ns)
        assert printed.returncode == 0, printed.stderr
        role, node_reader = (json.loads(c.split("\n", 1)[1]) for c in printed.stdout.split("# ")[1:])
        verb, resource = drop
        if verb:
            for rule in role["rules"]:
                if resource in rule["resources"]:
                    rule["verbs"] = [v for v in rule["verbs"] if v != verb]
        role["metadata"]["name"] = f"lit-{user}"
        _ok(self.cluster.api("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{self.ns}/roles", role), "role")
        _ok(self.cluster.api("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{self.ns}/rolebindings", {
            "metadata": {"name": f"lit-{user}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"lit-{user}"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}), "rolebinding")
        name = f"lit-nodes-{self.ns}-{user}"
        node_reader["metadata"]["name"] = name
        _ok(self.cluster.api("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", node_reader), "clusterrole")
        _ok(self.cluster.api("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}), "binding")

    def create(self, name: str = "kc", user: str = LIT_USER, *extra: str) -> subprocess.CompletedProcess[str]:
        return self("create", "cluster", name, "--provider", "kubernetes", "--kubeconfig",
                    str(self.cluster.user_kubeconfig(user)), "--namespace", self.ns, "--orphan-timeout", str(ORPHAN),
                    *extra)

    def pods(self, selector: str = MANAGED) -> list[dict[str, Any]]:
        body = _ok(self.cluster.api("GET", f"/api/v1/namespaces/{self.ns}/pods?labelSelector={selector}"), "pods")
        return list(body["items"])

    def labelled(self) -> list[str]:
        """Everything in the namespace labelled by lit that a run makes (the cluster's own objects excluded)."""
        left = []
        for path in (f"/api/v1/namespaces/{self.ns}/pods", f"/api/v1/namespaces/{self.ns}/configmaps",
                     f"/apis/networking.k8s.io/v1/namespaces/{self.ns}/networkpolicies"):
            body = _ok(self.cluster.api("GET", f"{path}?labelSelector={MANAGED},lit/run"), path)
            left += [f"{item['kind'] if 'kind' in item else path.rsplit('/', 1)[-1]}/{item['metadata']['name']}"
                     for item in body["items"]]
        return left

    def cleanup(self) -> None:
        super().cleanup()
        self.cluster.api("DELETE", f"/api/v1/namespaces/{self.ns}")


@pytest.fixture
def kube(k8s_cluster: Any, tmp_path: Path) -> Iterator[Kube]:
    runner = Kube(k8s_cluster, tmp_path)
    try:
        yield runner
        # What a run makes goes with it (a pod, its owner object, its network policy); then the cluster's own.
        wait_for(lambda: not runner.labelled(), 60, f"nothing of a run left in {runner.ns}: {runner.labelled()}")
        if (tmp_path / "home" / "clusters" / "kc" / "cluster.json").exists():
            deleted = runner("delete", "cluster", "kc", "--yes")
            assert deleted.returncode == 0, deleted.stderr
        body = _ok(k8s_cluster.api("GET", f"/api/v1/namespaces/{runner.ns}/serviceaccounts?labelSelector={MANAGED}"),
                   "serviceaccounts")
        assert not body["items"]
    finally:
        runner.cleanup()


def wait_line(proc: subprocess.Popen[str], text: str, timeout: float) -> None:
    """Until lit prints `text`; if it does not, the failure says what lit said on stderr."""
    try:
        _wait_line(proc, text, timeout=timeout)
    except AssertionError as exc:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        raise AssertionError(f"{exc}\nlit's stderr (exit {proc.returncode}):\n{err[-3000:]}") from None


def nodes_of(stderr: str) -> dict[str, str]:
    """work -> node, from lit's progress lines ("work | running: pod P on node N at IP")."""
    found = {}
    for line in stderr.splitlines():
        if "| running: pod " in line:
            work = line.split("|", 1)[0].strip()
            found[work] = line.split(" on node ", 1)[1].split()[0]
    return found


def test_hello_app_runs_each_work_in_its_own_pod_the_gpu_work_on_the_gpu_node(kube: Kube) -> None:
    kube.grant()
    created = kube.create()
    assert created.returncode == 0, created.stderr
    assert f"created cluster kc in namespace {kube.ns}" in created.stdout
    listed = kube("list", "clusters")
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if " kc " in line]
    assert "kubernetes" in row and f"/{kube.ns}" in row and "0 pods" in row, listed.stdout
    result = kube("run", str(REPO / "examples" / "hello_app.py"), "--cloud", "kc")
    assert result.returncode == 0, result.stderr
    assert "work_A | running code A on a CPU machine" in result.stdout
    assert "work_B | running code B on a GPU machine" in result.stdout
    nodes = nodes_of(result.stderr)
    gpu_node = kube.cluster.gpu_nodes[0].name
    assert nodes["work_B"] == gpu_node and nodes["work_A"] != gpu_node, result.stderr


def test_state_goes_both_ways_between_pods(kube: Kube, tmp_path: Path) -> None:
    kube.grant()
    assert kube.create().returncode == 0
    obs = tmp_path / "obs.json"
    result = kube("run", str(APPS / "where_app.py"), "--cloud", "kc", "--env", f"OBS={obs}")
    assert result.returncode == 0, result.stderr
    seen = json.loads(obs.read_text())
    ips = {seen[name]["ip"] for name in ("a", "b", "g")}
    assert len(ips) == 3 and all(ip.startswith("10.88.") for ip in ips), seen  # three pods, at their pod IPs
    for name in ("a", "b", "g"):
        assert seen[name]["config"] == {"who": name}  # flow -> work before the first call
    assert [0, 1, 2] in seen["observed"]  # work -> flow while it ran
    assert nodes_of(result.stderr)["g"] == kube.cluster.gpu_nodes[0].name


def test_the_seeds_train_and_analyze_files_move_between_pods(kube: Kube) -> None:
    kube.grant()
    assert kube.create().returncode == 0
    result = kube("run", str(REPO / "examples" / "train_analyze_app.py"), "--cloud", "kc")
    assert result.returncode == 0, result.stderr
    assert "trained on " in result.stdout and "mean absolute error on held-out data:" in result.stdout


def test_a_failing_work_fails_the_run(kube: Kube, tmp_path: Path) -> None:
    kube.grant()
    assert kube.create().returncode == 0
    app = tmp_path / "failing" / "app.py"
    app.parent.mkdir()
    app.write_text("import lit as L\n\n\nclass Boom(L.LightningWork):\n    def run(self):\n"
                   "        raise ValueError('boom in a pod')\n\n\nclass Flow(L.LightningFlow):\n"
                   "    def __init__(self):\n        super().__init__()\n        self.boom = Boom()\n\n"
                   "    def run(self):\n        self.boom.run()\n\n\napp = L.LightningApp(Flow())\n")
    result = kube("run", str(app), "--cloud", "kc")
    assert result.returncode == 1, result.stderr
    assert "ValueError: boom in a pod" in result.stderr


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_delete_the_runs_pods(kube: Kube, signum: int, code: int) -> None:
    kube.grant()
    assert kube.create().returncode == 0
    proc = kube.start("run", str(APPS / "sleep_app.py"), "--cloud", "kc", "--env", "SLEEP=120")
    wait_line(proc, "sleeping on", timeout=90)
    assert kube.pods()
    os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == code, err
    assert not kube.pods(), "lit ended and left pods behind"  # deleted and waited for, before lit exits


def test_lit_killed_its_pods_end_within_the_orphan_timeout(kube: Kube) -> None:
    kube.grant()
    assert kube.create().returncode == 0
    proc = kube.start("run", str(APPS / "sleep_app.py"), "--cloud", "kc", "--env", "SLEEP=300")
    wait_line(proc, "sleeping on", timeout=90)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()

    def ended() -> bool:
        return all(p["status"].get("phase") in ("Succeeded", "Failed") for p in kube.pods())

    wait_for(ended, ORPHAN + 60, "the orphaned agent to end its pod")
    # What a killed lit could not remove, the user removes with the cluster (everything labelled for it).
    deleted = kube("delete", "cluster", "kc", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert not kube.pods()


def test_the_gpu_pod_is_deleted_when_its_work_is_done_while_the_app_goes_on(kube: Kube) -> None:
    kube.grant()
    assert kube.create().returncode == 0
    proc = kube.start("run", str(APPS / "gpu_twice_app.py"), "--cloud", "kc", "--env", "WAIT=20")
    wait_line(proc, "cpu work waiting", timeout=120)
    gpu = f"{MANAGED},lit/work=root.train"
    wait_for(lambda: not kube.pods(gpu), 15, "the GPU work's pod to be deleted")
    assert proc.poll() is None  # the app still runs (its CPU work waits)
    assert kube.pods(f"{MANAGED},lit/work=root.wait")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


def test_a_missing_permission_is_one_clear_line_and_nothing_is_made(kube: Kube) -> None:
    kube.grant("lit-partial", drop=("create", "pods/exec"))
    result = kube.create("kc", "lit-partial")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "create pods/exec" in lines[-1], result.stderr
    assert "lit cluster policy --provider kubernetes" in lines[-1]
    assert not (kube.tmp / "home" / "clusters" / "kc").exists()
    body = _ok(kube.cluster.api("GET", f"/api/v1/namespaces/{kube.ns}/serviceaccounts?labelSelector={MANAGED}"), "sa")
    assert not body["items"]


def test_a_gpu_request_no_node_can_meet_is_refused_before_start(kube: Kube, tmp_path: Path) -> None:
    kube.grant()
    assert kube.create().returncode == 0
    app = tmp_path / "big" / "app.py"
    app.parent.mkdir()
    app.write_text("import lit as L\n\n\nclass Big(L.LightningWork):\n    def run(self):\n        print('never')\n\n\n"
                   "class Flow(L.LightningFlow):\n    def __init__(self):\n        super().__init__()\n"
                   "        self.big = Big(cloud_compute=L.CloudCompute('gpu-fast-multi'))\n\n"
                   "    def run(self):\n        self.big.run()\n\n\napp = L.LightningApp(Flow())\n")
    result = kube("run", str(app), "--cloud", "kc")
    assert result.returncode == 2, result.stderr
    assert "cannot be placed" in result.stderr and "nvidia.com/gpu=4" in result.stderr
    assert not kube.pods()


def test_an_evicted_pod_fails_its_work_with_the_reason_kubernetes_gives(kube: Kube) -> None:
    kube.grant()
    assert kube.create().returncode == 0
    proc = kube.start("run", str(APPS / "sleep_app.py"), "--cloud", "kc", "--env", "SLEEP=120")
    wait_line(proc, "sleeping on", timeout=90)
    [pod] = kube.pods()
    name = pod["metadata"]["name"]
    # The Eviction API, as `kubectl drain` uses it: the API server marks the pod (condition DisruptionTarget,
    # reason EvictionByEvictionAPI) and deletes it gracefully; the node ends its processes.
    _ok(kube.cluster.api("POST", f"/api/v1/namespaces/{kube.ns}/pods/{name}/eviction", {
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": kube.ns}}), "evict")
    _, err = proc.communicate(timeout=60)  # well within the orphan timeout lit would otherwise wait out
    assert proc.returncode == 1, err
    assert f"pod {name}" in err and "EvictionByEvictionAPI" in err, err
    assert "lost contact" not in err and "unreachable" not in err, err


def _drop_connections(pid: int, api_url: str) -> int:
    """Abort every TCP connection process `pid` has to the API server (`ss -K`, as a network fault would); how
    many."""
    port = api_url.rsplit(":", 1)[1]
    listed = subprocess.run(["ss", "-Htnp", "state", "established", "dport", "=", f":{port}"], capture_output=True,
                            text=True, check=True).stdout
    mine = [line.split()[2].rsplit(":", 1)[1] for line in listed.splitlines() if f"pid={pid}," in line]
    for sport in mine:
        subprocess.run(["ss", "-K", "-tn", "dport", "=", f":{port}", "sport", "=", f":{sport}"], check=True,
                       capture_output=True)
    return len(mine)


def test_a_dropped_exec_stream_is_reopened_and_the_work_goes_on(kube: Kube) -> None:
    kube.grant()
    assert kube.create().returncode == 0
    proc = kube.start("run", str(APPS / "sleep_app.py"), "--cloud", "kc", "--env", "SLEEP=12")
    wait_line(proc, "sleeping on", timeout=90)
    assert _drop_connections(proc.pid, kube.cluster.api_url) >= 2  # the exec stream and the pod watch at least
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "lost contact with" in err and "reconnected to" in err, err
    assert "woke up" in out and "sleeping on" not in out  # the same call, resumed: not run again


QUEUED_GPU_APP = '''\
import time

import lit as L


class Train(L.LightningWork):
    def __init__(self, seconds):
        # Each pod only once the flow runs the work (not all at the app's start): the second waits for the first.
        super().__init__(parallel=True, cloud_compute=L.CloudCompute("gpu"), start_with_flow=False)
        self.seconds = seconds

    def run(self):
        print(f"training for {self.seconds} s", flush=True)
        time.sleep(self.seconds)


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.first = Train(4)
        self.second = Train(0)

    def run(self):
        self.first.run()
        if self.first.is_running:
            self.second.run()
        if self.first.has_succeeded and self.second.has_succeeded:
            self.stop("both trained")


app = L.LightningApp(Flow())
'''


@pytest.mark.parametrize("max_gpus,reason", [("", "Insufficient nvidia.com/gpu"), ("1", "exceeded quota")])
def test_a_work_waiting_for_a_gpu_shows_why_and_runs_once_the_gpu_is_free(
        kube: Kube, tmp_path: Path, max_gpus: str, reason: str) -> None:
    kube.grant()
    assert kube.create("kc", LIT_USER, *(("--max-gpus", max_gpus) if max_gpus else ())).returncode == 0
    app = tmp_path / "queued" / "app.py"
    app.parent.mkdir()
    app.write_text(QUEUED_GPU_APP)
    result = kube("run", str(app), "--cloud", "kc")
    assert result.returncode == 0, result.stderr
    # The test cluster has one GPU: the second work's pod waits until the first work's pod is deleted at its end
    # (its GPU back to the cluster), saying why in Kubernetes' own words: the scheduler's, or (with --max-gpus)
    # the API server's, which refuses the pod over the namespace's quota.
    pending = [line for line in result.stderr.splitlines() if line.startswith("second") and "| pending: " in line]
    assert pending and reason in pending[0], result.stderr
    nodes = nodes_of(result.stderr)
    assert nodes["first"] == nodes["second"] == kube.cluster.gpu_nodes[0].name, result.stderr
    for work in ("first", "second"):  # deleted at its work's end; nothing left to remove at the app's
        deleted = [line for line in result.stderr.splitlines() if line.startswith(work) and "| pod deleted" in line]
        assert len(deleted) == 1, result.stderr


TWO_GPUS_APP = '''\
import time

import lit as L


class Hold(L.LightningWork):
    def run(self):
        print("holding the GPU", flush=True)
        time.sleep(300)


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.a = Hold(parallel=True, cloud_compute=L.CloudCompute("gpu"))
        self.b = Hold(parallel=True, cloud_compute=L.CloudCompute("gpu"))

    def run(self):
        self.a.run()
        self.b.run()


app = L.LightningApp(Flow())
'''


def test_ctrl_c_while_a_work_waits_for_a_gpu_ends_lit_at_once_and_removes_both_pods(kube: Kube, tmp_path: Path) -> None:
    kube.grant()
    assert kube.create().returncode == 0
    app = tmp_path / "two" / "app.py"
    app.parent.mkdir()
    app.write_text(TWO_GPUS_APP)
    proc = kube.start("run", str(app), "--cloud", "kc")
    wait_line(proc, "holding the GPU", timeout=90)  # one work has the cluster's only GPU; the other's pod waits
    assert len(kube.pods()) == 2
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)  # not the pending timeout (minutes)
    assert proc.returncode == 130, err
    assert "| pending: " in err and "still being prepared" not in err, err
    assert not kube.pods(), "lit ended and left pods behind"


MULTI_APP = '''\
import socket

import lit as L


class Where(L.LightningWork):
    def __init__(self, cluster):
        super().__init__(parallel=True, cloud_compute=L.CloudCompute("cpu", clusters=[cluster]))
        self.host_name = ""

    def run(self):
        self.host_name = socket.gethostname()
        print(f"ran on {self.host_name}", flush=True)


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.pod = Where("kc")
        self.host = Where("tb")

    def run(self):
        self.pod.run()
        self.host.run()
        if self.pod.has_succeeded and self.host.has_succeeded:
            self.stop(f"pod={self.pod.host_name} host={self.host.host_name}")


app = L.LightningApp(Flow())
'''


@pytest.fixture(scope="module")
def bed() -> Iterator[Any]:
    from tests.support import require
    from tests.testbed import require_root_and_sshd, testbed_fixture

    require(require_root_and_sshd(), "the SSH test bed")
    yield from testbed_fixture(1)


def test_one_app_runs_on_a_kubernetes_and_an_ssh_cluster_at_once(kube: Kube, bed: Any, tmp_path: Path) -> None:
    kube.grant()
    assert kube.create().returncode == 0
    host = bed.hosts[0]
    made = kube("create", "cluster", "tb", "--provider", "ssh", "--hosts", f"root@{host.address}", "--key",
                str(bed.key_path), "--known-hosts", str(bed.known_hosts_path))
    assert made.returncode == 0, made.stderr
    app = tmp_path / "multi" / "app.py"
    app.parent.mkdir()
    app.write_text(MULTI_APP)
    result = kube("run", str(app), "--cloud", "kc")
    assert result.returncode == 0, result.stderr
    assert "| ran on lit-kc-pod-" in result.stdout and f"host | ran on {host.name}" in result.stdout
    assert "running: pod" in result.stderr and f"agent up on root@{host.address}:22" in result.stderr
    deleted = kube("delete", "cluster", "tb", "--yes")
    assert deleted.returncode == 0, deleted.stderr
