"""MultiNode end to end: nodes that rendezvous at rank 0 over TCP and sum their values (examples/multinode_app.py),
locally (one process per node), on the SSH test bed (one host per node) and in the fake cloud (one GPU instance per
node, each stopped when its node is done). PyTorchSpawnMultiNode: the clear error where torch is not installed.

The cloud tests share the one fake cloud of this machine: run this file under
`flock /tmp/lit-fakecloud-tests.lock python -m pytest tests/test_components_multinode.py`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lit as L
from tests.conftest import LitRunner, prefixed, table_rows
from tests.support import require, wait_for, wait_line
from tests.testbed import TestBed, require_root_and_sshd, testbed_fixture

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "examples" / "multinode_app.py"
TORCH_APP = REPO / "examples" / "multinode_torch_app.py"
NODES = 3
TOTAL = sum((rank + 1) * 10 for rank in range(NODES))  # what examples/multinode_app.py sums: 10 + 20 + 30
STARTED = re.compile(r"node_rank (\d+) of (\d+) on (\S+) started")


def ranks_and_hosts(stdout: str) -> dict[int, str]:
    """node_rank -> the host it said it ran on."""
    return {int(m[1]): m[3] for m in STARTED.finditer(stdout)}


def check_sum(stdout: str) -> None:
    """Every rank printed the one total, each under its own work's prefix."""
    for rank in range(NODES):
        assert f"node_rank {rank} total {TOTAL}" in prefixed(stdout, f"ws.{rank}"), stdout


# -- the component on its own (no app running) --------------------------------------------------------------------
class Node(L.LightningWork):
    def __init__(self, tag: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tag = tag

    def run(self, main_address: str, main_port: int, num_nodes: int, node_rank: int) -> None:
        pass


def test_multinode_builds_num_nodes_parallel_works_with_the_compute_and_arguments() -> None:
    from lit.app.components import MultiNode as FromApp
    from lit.components import MultiNode

    assert FromApp is MultiNode
    flow = MultiNode(Node, 4, L.CloudCompute("gpu"), "x")
    assert len(flow.ws) == 4
    assert [w.name for w in flow.ws] == [f"root.ws.{i}" for i in range(4)]
    for work in flow.ws:
        assert isinstance(work, Node) and work.tag == "x"
        assert work.parallel and work.cloud_compute.name == "gpu"


@pytest.mark.parametrize("args", [(Node, 0, L.CloudCompute()), (Node, "2", L.CloudCompute()),
                                  (object, 2, L.CloudCompute()), (Node, 2, "gpu")])
def test_multinode_refuses_bad_arguments(args: tuple[Any, ...]) -> None:
    from lit.components import MultiNode

    with pytest.raises((TypeError, ValueError)):
        MultiNode(*args, "x")


def test_pytorch_spawn_multinode_takes_lightnings_argument_order_and_keeps_the_users_class() -> None:
    from lit.components import PyTorchSpawnMultiNode

    flow = PyTorchSpawnMultiNode(Node, L.CloudCompute("cpu"), 2, "y")
    assert len(flow.ws) == 2
    for work in flow.ws:
        assert isinstance(work, Node) and type(work) is not Node  # a subclass: the user's class is not changed
        assert type(work).__name__ == "Node" and work.tag == "y"
    assert Node.run is not type(flow.ws[0]).run


# -- locally: one process per node ---------------------------------------------------------------------------------
def test_local_three_nodes_sum_over_tcp_at_rank_0(lit: LitRunner) -> None:
    result = lit.run(APP, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sorted(ranks_and_hosts(result.stdout)) == list(range(NODES)), result.stdout
    check_sum(result.stdout)
    rows = table_rows(result.stderr)
    # Each node was stopped once done (its machine released); its status stays its call's outcome.
    assert [rows[f"ws.{rank}"][2] for rank in range(NODES)] == ["succeeded"] * NODES, result.stderr


def test_local_one_failed_rank_fails_the_app_naming_its_rank(lit: LitRunner) -> None:
    result = lit.run(APP, env={"MULTINODE_FAIL_RANK": "1"}, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "node_rank 1 failed" in result.stderr
    assert "RuntimeError: rank 1 was told to fail" in result.stderr


def test_torch_spawn_example_says_pip_install_torch_where_torch_is_missing(lit: LitRunner) -> None:
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here: the example runs for real (see examples/multinode_torch_app.py)")
    result = lit.run(TORCH_APP, timeout=60)
    assert result.returncode == 1, result.stderr
    assert re.search(r"node_rank [01] failed .*: ModuleNotFoundError: .*pip install torch", result.stderr), \
        result.stderr


# -- the SSH test bed: one host per node ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bed() -> Iterator[TestBed]:
    require(require_root_and_sshd(), "the SSH test bed")
    yield from testbed_fixture(NODES)


@pytest.fixture
def ssh_lit(tmp_path: Path, bed: TestBed) -> Iterator[Any]:
    from tests.test_ssh_cluster import Lit

    runner = Lit(tmp_path, bed)
    yield runner
    runner.cleanup()
    for host in bed.hosts:  # no agent of a test outlives it
        host.exec(["sh", "-c", "pkill -9 -f lit.runtime.agent; rm -rf /root/.lit/gpu-leases"])


def test_ssh_each_rank_on_its_own_host_sums_over_the_beds_network(ssh_lit: Any, bed: TestBed) -> None:
    # Three CPU hosts, none declared with a GPU: lit puts a CPU work on the least loaded host and a GPU host last,
    # so with a GPU host two ranks would share a CPU host (MultiNode asks for nothing more than its compute).
    hosts_arg = ",".join(f"root@{h.address}" for h in bed.hosts)
    made = ssh_lit("create", "cluster", "tb", "--provider", "ssh", "--hosts", hosts_arg, "--key", str(bed.key_path),
                   "--known-hosts", str(bed.known_hosts_path))
    assert made.returncode == 0, made.stderr
    result = ssh_lit("run", str(APP), "--cloud", "tb", timeout=120)
    assert result.returncode == 0, result.stderr
    hosts = ranks_and_hosts(result.stdout)
    assert sorted(hosts) == list(range(NODES)), result.stdout
    assert set(hosts.values()) == {h.name for h in bed.hosts}, hosts  # three distinct hosts
    check_sum(result.stdout)


# -- the fake cloud: one GPU instance per node, each stopped once its node is done ---------------------------------
@pytest.fixture(scope="module")
def cloud() -> Iterator[Any]:
    from tests.fakecloud import fakecloud_fixture, requirement

    require(requirement(), "the fake cloud")
    yield from fakecloud_fixture()


@pytest.fixture
def aws_lit(cloud: Any, tmp_path: Path) -> Iterator[Any]:
    from tests.test_aws_run import Lit, create_cluster, instances

    home = tmp_path / "home"
    create_cluster(cloud, home, "gpus")
    ec2 = cloud.client(cloud.admin_session(), "ec2")
    runner = Lit(cloud, home, tmp_path)
    runner.ec2 = ec2
    yield runner
    for proc in runner.procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    left = [i["InstanceId"] for i in instances(ec2)]  # pending, running, stopping or stopped
    if left:
        ec2.terminate_instances(InstanceIds=left)
    assert not left, f"instances left: {left}"


def test_cloud_three_gpu_nodes_sum_and_each_instance_stops_when_its_node_is_done(aws_lit: Any) -> None:
    from tests.test_aws_run import instances, work_of

    ec2 = aws_lit.ec2
    hold = 6.0  # rank r keeps running r * hold seconds after the sum: rank 0 ends first, rank 2 last
    proc = aws_lit.start(str(APP), "--cloud", "gpus", "--env", "MULTINODE_COMPUTE=gpu", "--env",
                         f"MULTINODE_HOLD={hold}")
    seen = "".join(wait_line(proc, "node_rank 0 total", timeout=240))
    assert f"node_rank 0 total {TOTAL}" in seen, seen
    stopped = {}
    for rank in (0, 1):  # rank 0 ends at once, rank 1 `hold` s later: each machine stops while rank 2 still runs
        stopped[rank] = wait_for(
            lambda r=rank: [i for i in instances(ec2, ("stopping", "stopped")) if work_of(i) == f"root.ws.{r}"],
            hold * 1.6, f"rank {rank}'s GPU instance to stop once its node is done")[0]["InstanceId"]
        running = {work_of(i) for i in instances(ec2, ("running",))}
        assert "root.ws.2" in running, running  # only a finished node's machine stops
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    out = seen + out
    check_sum(out)
    hosts = ranks_and_hosts(out)
    assert len(set(hosts.values())) == NODES, hosts  # one instance per node
    ran = {work_of(i): i for i in instances(ec2, ("terminated",)) if i["InstanceId"] in err}
    assert set(ran) == {f"root.ws.{r}" for r in range(NODES)}, err
    assert all(i["InstanceType"] == "g5.xlarge" for i in ran.values()), ran
    assert {rank: ran[f"root.ws.{rank}"]["InstanceId"] for rank in stopped} == stopped  # stopped, then terminated
