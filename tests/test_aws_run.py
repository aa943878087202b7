"""`lit run --cloud` on an aws cluster, end to end in the fake cloud: every instance moto runs is a test-bed host
configured only from its cloud-init user data. Faults (capacity, quota) are injected with botocore event hooks
(tests/aws_hooks.py) inside the real `lit` process. After every test, no instance is left running."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakecloud import FakeCloud, fakecloud_fixture, requirement
from tests.fakecloud.motod import PUBLIC_CIDR
from tests.support import demo_wheel, require, wait_for, wait_line

ROLE = "arn:aws:iam::111122223333:role/lit-byoc"
EXTERNAL_ID = "lit-test-external-id"
REPO = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "remote_apps"
ORPHAN = 6


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeCloud]:
    require(requirement(), "the fake cloud")
    yield from fakecloud_fixture()


def create_cluster(cloud: FakeCloud, home: Path, name: str) -> None:
    """An aws cluster in the fake cloud (orphan timeout short), made through the real CLI."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **cloud.env, "LIT_HOME": str(home)}
    made = subprocess.run([sys.executable, "-m", "lit", "create", "cluster", name, "--provider", "aws",
                           "--role-arn", ROLE, "--external-id", EXTERNAL_ID, "--orphan-timeout", str(ORPHAN)],
                          capture_output=True, text=True, env=env, timeout=180)
    assert made.returncode == 0, made.stderr


@pytest.fixture(scope="module")
def home(cloud: FakeCloud, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cluster for the module."""
    home = tmp_path_factory.mktemp("aws-run") / "home"
    create_cluster(cloud, home, "gpus")
    return home


@pytest.fixture
def ec2(cloud: FakeCloud) -> Any:
    """EC2 as the fake cloud's admin sees it (lit's role may not describe instance attributes)."""
    return cloud.client(cloud.admin_session(), "ec2")


def instances(ec2: Any, states: tuple[str, ...] = ("pending", "running", "stopping", "stopped"),
              ) -> list[dict[str, Any]]:
    found = ec2.describe_instances(Filters=[{"Name": "tag:lit:cluster", "Values": ["gpus"]},
                                            {"Name": "instance-state-name", "Values": list(states)}])
    return [i for r in found["Reservations"] for i in r["Instances"]]


def work_of(instance: dict[str, Any]) -> str:
    return next(t["Value"] for t in instance["Tags"] if t["Key"] == "lit:work")


class Lit:
    def __init__(self, cloud: FakeCloud, home: Path, tmp_path: Path) -> None:
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **cloud.env,
                    "LIT_HOME": str(home), "LIT_BOTO_HOOKS": "tests.aws_hooks:register"}
        self.tmp = tmp_path
        self.procs: list[subprocess.Popen[str]] = []

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "lit", *args]

    def run(self, *args: str, faults: dict[str, Any] | None = None, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "LIT_TEST_AWS_FAULTS": json.dumps(faults or {})}
        return subprocess.run(self.argv("run", *args), capture_output=True, text=True, env=env, cwd=self.tmp,
                              timeout=timeout)

    def start(self, *args: str, faults: dict[str, Any] | None = None) -> subprocess.Popen[str]:
        env = {**self.env, "LIT_TEST_AWS_FAULTS": json.dumps(faults or {})}
        proc = subprocess.Popen(self.argv("run", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=self.tmp, start_new_session=True)
        self.procs.append(proc)
        return proc


@pytest.fixture
def lit(cloud: FakeCloud, home: Path, tmp_path: Path, ec2: Any) -> Iterator[Lit]:
    runner = Lit(cloud, home, tmp_path)
    yield runner
    for proc in runner.procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    left = [i["InstanceId"] for i in instances(ec2, ("pending", "running"))]
    if left:  # clean up for the next test, then fail this one: nothing may be left running
        ec2.terminate_instances(InstanceIds=left)
    stopped = [i["InstanceId"] for i in instances(ec2, ("stopped", "stopping"))]
    if stopped:
        ec2.terminate_instances(InstanceIds=stopped)
    assert not left, f"instances left running: {left}"






def test_hello_app_each_work_on_its_own_instance_all_terminated_at_the_end(lit: Lit, ec2: Any, home: Path) -> None:
    result = lit.run(str(REPO / "examples" / "hello_app.py"), "--cloud", "gpus")
    assert result.returncode == 0, result.stderr
    assert "work_A | running code A on a CPU machine" in result.stdout
    assert "work_B | running code B on a GPU machine" in result.stdout
    ran = [i for i in instances(ec2, ("terminated",)) if work_of(i) in ("root.work_A", "root.work_B")]
    types = {work_of(i): i["InstanceType"] for i in ran}
    assert types == {"root.work_A": "m6i.large", "root.work_B": "g5.xlarge"}
    assert not instances(ec2)  # terminated at app end
    for line in ("requested g5.xlarge in", "SSH ready", "agent up on", "done: releasing its machine",
                 "work_A | machine terminated", "work_B | machine stopped", "work_B | machine terminated"):
        assert line in result.stderr
    assert "g5.xlarge" in result.stderr and "$" in result.stderr  # the summary's instance type and cost


def test_works_reach_each_other_at_private_addresses_and_lit_connects_to_public_ones(lit: Lit, ec2: Any) -> None:
    """A work's internal_ip is its instance's private address (the one the cluster's security group admits traffic
    from the other instances on); lit itself connects to the public one, which the other instances cannot reach."""
    obs = lit.tmp / "obs.json"
    result = lit.run(str(APPS / "serve_app.py"), "--cloud", "gpus", "--env", f"OBS={obs}")
    assert result.returncode == 0, result.stderr
    seen = json.loads(obs.read_text())
    ran = {work_of(i): i for i in instances(ec2, ("terminated",)) if i["InstanceId"] in result.stderr}
    server, client = ran["root.server"], ran["root.client"]
    private = server["PrivateIpAddress"]
    assert seen["url"].startswith(f"http://{private}:"), (seen, private)
    assert seen["answer"]["served_by"] == "ip-" + private.replace(".", "-")
    assert seen["client"] == "ip-" + client["PrivateIpAddress"].replace(".", "-")
    for instance in (server, client):
        iid = instance["InstanceId"]
        line = next(x for x in result.stderr.splitlines() if f"running: {iid} " in x)
        public = line.split(" at ", 1)[1].split()[0]
        assert line.endswith(f"(private {instance['PrivateIpAddress']})"), line
        assert ipaddress.ip_address(public) in ipaddress.ip_network(PUBLIC_CIDR), line
        assert f"connecting to ubuntu@{public}:22" in result.stderr


def test_picklable_call_arguments_reach_a_work_on_an_instance(lit: Lit) -> None:
    from tests.test_call_args import check_received

    obs = lit.tmp / "obs.json"
    result = lit.run(str(APPS / "pickled_args_app.py"), "--cloud", "gpus", "--env", f"OBS={obs}")
    assert result.returncode == 0, result.stderr
    check_received(json.loads(obs.read_text()))


def test_every_instance_is_locked_down(lit: Lit, ec2: Any, home: Path, cloud: FakeCloud) -> None:
    """IMDSv2, encrypted root volume, tags, shutdown behaviour, user data with the cluster's key, and the host key
    replaced after the first contact."""
    proc = lit.start(str(APPS / "sleep_app.py"), "--cloud", "gpus", "--env", "SLEEP=30", "--env", "COMPUTE=gpu")
    wait_line(proc, "sleeping on")
    (instance,) = instances(ec2, ("running",))
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags["lit:cluster"] == "gpus" and tags["lit:app"].startswith("sleep_app-")
    assert tags["lit:work"] == "root.sleeper" and tags["lit:compute"] == "gpu"
    assert tags["lit:run"].startswith("sleep_app-")
    behaviour = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"],
                                                Attribute="instanceInitiatedShutdownBehavior")
    assert behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance["InstanceId"]]}])
    assert volumes["Volumes"] and all(v["Encrypted"] for v in volumes["Volumes"])
    record = json.loads((home / "clusters" / "gpus" / "cluster.json").read_text())
    outputs = record["settings"]["outputs"]
    assert instance["SubnetId"] in outputs["subnet_ids"]
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [outputs["security_group_id"]]
    data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    text = base64.b64decode(data["UserData"]["Value"]).decode()
    assert text.startswith("#cloud-config\n") and record["settings"]["public_key"].split()[1] in text
    first_key = next(line.split(":", 1)[1].strip() for line in text.splitlines() if "ed25519_public" in line)
    # The key in the user data (readable by anyone who may describe the instance) is no longer the host's.
    host = cloud.wait_host(instance["InstanceId"], 10)
    presented = host.exec(["sh", "-c", "cat /etc/ssh/ssh_host_ed25519_key.pub"]).stdout.split()[1]
    pinned = (home / "clusters" / "gpus" / "hosts" / f"{instance['InstanceId']}.known_hosts").read_text().split()
    assert presented == pinned[2] and presented != first_key.split()[1]
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130


def test_gpu_instance_stopped_when_its_work_is_done_and_started_again(lit: Lit, ec2: Any) -> None:
    proc = lit.start(str(APPS / "gpu_twice_app.py"), "--cloud", "gpus", "--env", "WAIT=4", "--env", "TWICE=1")
    wait_line(proc, "cpu work waiting")
    gpu = wait_for(lambda: [i for i in instances(ec2, ("stopped",)) if work_of(i) == "root.train"], 3,
                   "the GPU instance to stop while the CPU work runs")
    cpu = [i for i in instances(ec2, ("running",)) if work_of(i) == "root.wait"]
    assert cpu, "the CPU instance keeps running: only GPU machines stop when their work is done"
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "trained 2 epochs" in out
    runs = [i for i in instances(ec2, ("terminated",)) if work_of(i) == "root.train"]
    assert [i["InstanceId"] for i in runs] == [gpu[0]["InstanceId"]], err  # the same machine, started again
    assert f"starting {gpu[0]['InstanceId']} again" in err


def test_idle_timeout_stops_a_cpu_instance_that_long_after_its_work(lit: Lit, ec2: Any, home: Path) -> None:
    idle = 4.0
    proc = lit.start(str(APPS / "gpu_twice_app.py"), "--cloud", "gpus", "--env", "WAIT=10", "--env",
                     "TRAIN_COMPUTE=cpu", "--env", f"IDLE={idle}", "--name", "idle-cpu")
    wait_line(proc, "cpu work waiting")
    assert [i for i in instances(ec2, ("running",)) if work_of(i) == "root.train"], "stopped before its idle timeout"
    wait_for(lambda: [i for i in instances(ec2, ("stopped",)) if work_of(i) == "root.train"], 15,
             "the idle CPU instance to stop while the other work runs")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    record = json.loads((home / "runs" / "idle-cpu" / "run.json").read_text())
    train = next(w for w in record["works"] if w["name"] == "train")
    asked = train["machine_stops"][0][0]
    assert asked - train["finished_at"] >= idle - 0.5, (asked, train["finished_at"])


def test_capacity_failover_next_az_then_next_type(lit: Lit, ec2: Any, home: Path) -> None:
    subnets = json.loads((home / "clusters" / "gpus" / "cluster.json").read_text())["settings"]["outputs"]["subnet_ids"]
    faults = {"capacity": [{"type": "g5.xlarge", "subnet": subnets[0]}]}
    result = lit.run(str(REPO / "examples" / "hello_app.py"), "--cloud", "gpus", faults=faults)
    assert result.returncode == 0, result.stderr
    assert "g5.xlarge in us-east-1a: InsufficientInstanceCapacity; trying the next option" in result.stderr
    assert "requested g5.xlarge in us-east-1b" in result.stderr
    faults = {"capacity": [{"type": "g5.xlarge", "subnet": "*"}]}
    result = lit.run(str(REPO / "examples" / "hello_app.py"), "--cloud", "gpus", faults=faults)
    assert result.returncode == 0, result.stderr
    assert "requested g4dn.xlarge" in result.stderr
    assert "g4dn.xlarge" in [i["InstanceType"] for i in instances(ec2, ("terminated",))]


def test_a_new_instance_profile_not_yet_visible_to_ec2_is_waited_out(lit: Lit, ec2: Any) -> None:
    result = lit.run(str(APPS / "sleep_app.py"), "--cloud", "gpus", "--env", "SLEEP=0", "--env", "COMPUTE=cpu",
                     faults={"profile_not_ready": 2})
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("instance profile is not visible to EC2 yet") == 2, result.stderr
    assert "woke up" in result.stdout


def test_no_capacity_anywhere_is_a_clear_error_and_nothing_runs(lit: Lit, ec2: Any) -> None:
    faults = {"capacity": [{"type": "g5.xlarge", "subnet": "*"}, {"type": "g4dn.xlarge", "subnet": "*"}]}
    result = lit.run(str(REPO / "examples" / "hello_app.py"), "--cloud", "gpus", faults=faults)
    assert result.returncode == 3, result.stderr
    assert "no capacity for CloudCompute('gpu'); tried: g5.xlarge in us-east-1a" in result.stderr
    assert "g4dn.xlarge in us-east-1b: InsufficientInstanceCapacity" in result.stderr
    assert not instances(ec2)


def test_zero_gpu_quota_is_a_clear_error(lit: Lit, ec2: Any) -> None:
    result = lit.run(str(REPO / "examples" / "hello_app.py"), "--cloud", "gpus", faults={"quota": {"L-DB2E81BA": 0}})
    assert result.returncode == 3, result.stderr
    assert "quota 'Running On-Demand G and VT instances' (L-DB2E81BA) is 0 vCPUs" in result.stderr
    assert "request-service-quota-increase" in result.stderr
    assert not instances(ec2)


def test_ctrl_c_terminates_every_instance(lit: Lit, ec2: Any) -> None:
    proc = lit.start(str(APPS / "sleep_app.py"), "--cloud", "gpus", "--env", "SLEEP=60", "--env", "COMPUTE=gpu")
    wait_line(proc, "sleeping on")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not instances(ec2)


def start_booting(lit: Lit, ec2: Any, boot: float) -> tuple[subprocess.Popen[str], str]:
    """A run whose one instance exists but, for `boot` seconds, looks not ready to lit; its instance id."""
    proc = lit.start(str(APPS / "sleep_app.py"), "--cloud", "gpus", "--env", "SLEEP=60", "--env", "COMPUTE=cpu",
                     faults={"slow_boot": boot})
    wait_line(proc, "requested ", stream="stderr")
    wait_for(lambda: instances(ec2, ("pending", "running")), 20, "the instance to exist")
    [instance_id] = [i["InstanceId"] for i in instances(ec2, ("pending", "running"))]
    return proc, instance_id


def test_ctrl_c_while_an_instance_boots_terminates_it_before_lit_exits(lit: Lit, ec2: Any) -> None:
    """The instance exists (RunInstances answered) but is not ready yet when Ctrl-C comes: lit waits for it and
    terminates it; nothing is left for the orphan timeout, since no agent ever ran there."""
    proc, instance_id = start_booting(lit, ec2, boot=2.0)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert [i["InstanceId"] for i in instances(ec2, ("terminated",))].count(instance_id) == 1, err
    assert not instances(ec2, ("pending", "running")), err
    assert "still up" not in err


def test_ctrl_c_while_lit_waits_for_ssh_on_a_booting_instance(lit: Lit, ec2: Any, cloud: FakeCloud) -> None:
    """The instance runs in moto but its sshd is not up yet (a 60 s boot): Ctrl-C ends lit at once and the
    instance is terminated, not waited for."""
    cloud.set_boot(60.0)
    try:
        proc = lit.start(str(APPS / "sleep_app.py"), "--cloud", "gpus", "--env", "SLEEP=60", "--env", "COMPUTE=cpu")
        wait_line(proc, "connecting to ", stream="stderr")
        [instance_id] = [i["InstanceId"] for i in instances(ec2, ("pending", "running"))]
        time.sleep(0.5)  # into lit's wait for SSH, which prints nothing more until the machine answers
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=40)  # well before the 60 s boot ends: lit does not wait for the machine
    finally:
        cloud.set_boot(0.0)
    assert proc.returncode == 130, err
    assert instance_id in [i["InstanceId"] for i in instances(ec2, ("terminated",))]
    assert "still up" not in err


def test_a_second_ctrl_c_stops_waiting_and_names_what_is_still_up(lit: Lit, ec2: Any) -> None:
    proc, instance_id = start_booting(lit, ec2, boot=30.0)
    os.killpg(proc.pid, signal.SIGINT)
    # lit is waiting for the booting instance (each look at it takes 30 s here), and says so
    wait_line(proc, "still being prepared, to remove them; press Ctrl-C again to stop waiting", timeout=20,
              stream="stderr")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=20)  # it stopped waiting: each look at the instance takes 30 s
    assert proc.returncode == 130, err
    line = next(x for x in err.splitlines() if x.startswith("still up: "))
    assert instance_id in line and "lit delete cluster gpus --yes" in line
    assert f"aws ec2 terminate-instances --instance-ids {instance_id}" in line
    ec2.terminate_instances(InstanceIds=[instance_id])  # what the user would do with the command shown


def test_lit_killed_every_instance_stops_by_itself_within_the_orphan_timeout(lit: Lit, ec2: Any) -> None:
    proc = lit.start(str(APPS / "sleep_app.py"), "--cloud", "gpus", "--env", "SLEEP=300", "--env", "COMPUTE=cpu")
    wait_line(proc, "sleeping on")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    killed = time.monotonic()
    assert instances(ec2, ("running",))
    wait_for(lambda: not instances(ec2, ("pending", "running")), ORPHAN + 15, "the orphaned instance to stop itself")
    assert time.monotonic() - killed >= ORPHAN - 1
    assert [i["State"]["Name"] for i in instances(ec2)] == ["stopped"]  # by its own shutdown -h now


def test_stop_and_terminate_answered_not_found_or_pending_are_asked_again(lit: Lit, ec2: Any) -> None:
    """Right after RunInstances EC2 may not see the instance yet (InvalidInstanceID.NotFound: "does not mean the
    instance was or will be terminated"), or it is still pending (IncorrectInstanceState): lit asks again until
    DescribeInstances confirms, and leaves nothing running."""
    result = lit.run(str(APPS / "sleep_app.py"), "--cloud", "gpus", "--env", "SLEEP=0", "--env", "COMPUTE=gpu",
                     "--name", "not-yet", faults={"not_found": {"StopInstances": 2, "TerminateInstances": 2},
                                                  "incorrect_state": {"StopInstances": 1}})
    assert result.returncode == 0, result.stderr
    assert "woke up" in result.stdout
    assert "machine stopped" in result.stderr and "machine terminated" in result.stderr
    ours = [i for i in instances(ec2, ("pending", "running", "stopping", "stopped", "shutting-down", "terminated"))
            if {"Key": "lit:run", "Value": "not-yet"} in i["Tags"]]
    assert ours and all(i["State"]["Name"] in ("shutting-down", "terminated") for i in ours), ours


def test_kept_machines_are_never_taken_by_another_app_with_the_same_names(lit: Lit, ec2: Any) -> None:
    """a/app.py and b/app.py, both with work 'root.sleeper': b must not start a's kept machine."""
    source = (APPS / "sleep_app.py").read_text()
    for name in ("a", "b"):
        (lit.tmp / name).mkdir()
        (lit.tmp / name / "app.py").write_text(source)
    first = lit.run(str(lit.tmp / "a" / "app.py"), "--cloud", "gpus", "--env", "SLEEP=0", "--keep-machines")
    assert first.returncode == 0, first.stderr
    (kept,) = [i["InstanceId"] for i in instances(ec2, ("stopped",))]
    second = lit.run(str(lit.tmp / "b" / "app.py"), "--cloud", "gpus", "--env", "SLEEP=0")
    assert second.returncode == 0, second.stderr
    assert kept not in second.stderr and "again" not in second.stderr
    assert [i["InstanceId"] for i in instances(ec2, ("stopped",))] == [kept]  # still a's, still stopped
    # The same app again takes it; with another compute it would not.
    third = lit.run(str(lit.tmp / "a" / "app.py"), "--cloud", "gpus", "--env", "SLEEP=0", "--env", "COMPUTE=cpu-small")
    assert third.returncode == 0, third.stderr
    assert kept not in third.stderr
    fourth = lit.run(str(lit.tmp / "a" / "app.py"), "--cloud", "gpus", "--env", "SLEEP=0")
    assert fourth.returncode == 0, fourth.stderr
    assert f"starting {kept} again" in fourth.stderr


def test_requirements_install_on_an_image_without_ensurepip(lit: Lit, ec2: Any) -> None:
    """The instance's python3 has no ensurepip, as on stock Ubuntu (python3-venv is not installed): lit makes the
    venv without pip and brings pip as a wheel; the app's own wheels/ serve its requirements (no index here)."""
    import shutil

    app_dir = lit.tmp / "reqs"
    shutil.copytree(APPS / "reqs", app_dir)
    demo_wheel(app_dir / "wheels")
    result = lit.run(str(app_dir / "req_app.py"), "--cloud", "gpus", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "litdemo says 42" in result.stdout and "installing requirements.txt" in result.stderr
    assert not instances(ec2)


def test_keep_machines_stops_them_and_the_next_run_reuses_them(lit: Lit, ec2: Any) -> None:
    first = lit.run(str(REPO / "examples" / "hello_app.py"), "--cloud", "gpus", "--keep-machines")
    assert first.returncode == 0, first.stderr
    kept = {work_of(i): i["InstanceId"] for i in instances(ec2, ("stopped",))}
    assert set(kept) == {"root.work_A", "root.work_B"}
    second = lit.run(str(REPO / "examples" / "hello_app.py"), "--cloud", "gpus")
    assert second.returncode == 0, second.stderr
    reused = {work_of(i): i["InstanceId"] for i in instances(ec2, ("terminated",)) if i["InstanceId"] in kept.values()}
    assert reused == kept
    assert "again" in second.stderr


def test_a_capacity_error_on_restart_fails_the_work_and_never_replaces_the_machine(lit: Lit, ec2: Any) -> None:
    result = lit.run(str(APPS / "gpu_twice_app.py"), "--cloud", "gpus", "--env", "WAIT=1", "--env", "TWICE=1",
                     "--name", "restart-no-capacity", faults={"start_capacity": True})
    assert result.returncode == 3, result.stderr
    assert "train failed" in result.stderr and "InsufficientInstanceCapacity" in result.stderr
    ours = [i for i in instances(ec2, ("terminated", "stopped", "running"))
            if {"Key": "lit:run", "Value": "restart-no-capacity"} in i["Tags"]]
    trains = [i for i in ours if work_of(i) == "root.train"]
    assert len(trains) == 1  # the same machine or nothing: its disk is not silently swapped for a new one
    assert not instances(ec2, ("pending", "running"))
