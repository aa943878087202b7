"""`--provider ssh` end to end on the multi-host test bed: real sshd in network namespaces.

Each test gets its own LIT_HOME and cluster record; the bed (3 hosts, h3 declared with one GPU) is shared
by the module. In CI these tests must run: only a machine without root or sshd skips them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import LitCli, demo_wheel, require, wait_for, wait_line
from tests.testbed import TestBed, require_root_and_sshd, testbed_fixture

REPO = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "remote_apps"
ORPHAN = 6  # seconds: short, so orphan and partition tests end quickly


@pytest.fixture(scope="module")
def bed() -> Iterator[TestBed]:
    require(require_root_and_sshd(), "the SSH test bed")
    yield from testbed_fixture(3)


class Lit(LitCli):
    """Runs the `lit` CLI with a private LIT_HOME; remembers the processes it started."""

    def __init__(self, tmp_path: Path, bed: TestBed) -> None:
        super().__init__(tmp_path, {**os.environ, "LIT_HOME": str(tmp_path / "home")})
        self.bed = bed

    def create(self, name: str = "tb", orphan: float = ORPHAN, *extra: str) -> subprocess.CompletedProcess[str]:
        hosts = ",".join(f"root@{h.address}" for h in self.bed.hosts)
        result = self("create", "cluster", name, "--provider", "ssh", "--hosts", hosts, "--key",
                      str(self.bed.key_path), "--known-hosts", str(self.bed.known_hosts_path),
                      "--gpus", f"{self.bed.hosts[2].address}=1", "--orphan-timeout", str(orphan), *extra)
        assert result.returncode == 0, result.stderr
        return result

    def record_exists(self, name: str) -> bool:
        return (self.tmp / "home" / "clusters" / name / "cluster.json").exists()


@pytest.fixture
def lit(tmp_path: Path, bed: TestBed) -> Iterator[Lit]:
    runner = Lit(tmp_path, bed)
    yield runner
    runner.cleanup()
    for host in bed.hosts:  # no agent of a test outlives it
        if not host.link_is_up:
            host.link_up()
        host.exec(["sh", "-c", "pkill -9 -f lit.runtime.agent; rm -rf /root/.lit/gpu-leases"])


def agents(host: Any) -> list[int]:
    return [pid for pid, cmd in host.processes() if "lit.runtime.agent detached" in cmd]






def test_hello_app_runs_each_work_on_its_own_host(lit: Lit, bed: TestBed) -> None:
    lit.create()
    result = lit("run", str(REPO / "examples" / "hello_app.py"), "--cloud", "tb", "--name", "hello")
    assert result.returncode == 0, result.stderr
    assert "work_A | running code A on a CPU machine" in result.stdout
    assert "work_B | running code B on a GPU machine" in result.stdout
    # The output is also kept on the host that ran it, and only there.
    has_log = {h.name: {w: h.exec(["test", "-f", f"/root/.lit/runs/hello/logs/{w}.log"]).returncode == 0
                        for w in ("work_A", "work_B")} for h in bed.hosts}
    assert has_log["h3"] == {"work_A": False, "work_B": True}  # the GPU work on the GPU host
    assert sum(v["work_A"] for v in has_log.values()) == 1
    assert not has_log["h3"]["work_A"]  # CPU works go to GPU hosts last


def test_dag_example_and_state_both_ways_on_three_hosts(lit: Lit, bed: TestBed, tmp_path: Path) -> None:
    lit.create()
    result = lit("run", str(REPO / "examples" / "dag_app.py"), "--cloud", "tb")
    assert result.returncode == 0, result.stderr
    assert "report   | report: score=" in result.stdout
    obs = tmp_path / "obs.json"
    result = lit("run", str(APPS / "where_app.py"), "--cloud", "tb", "--env", f"OBS={obs}")
    assert result.returncode == 0, result.stderr
    seen = json.loads(obs.read_text())
    hosts = {seen[name]["host"] for name in ("a", "b", "g")}
    assert hosts == {"h1", "h2", "h3"}, seen  # provably distinct hosts
    assert seen["g"]["host"] == "h3"
    for name in ("a", "b", "g"):
        assert seen[name]["config"] == {"who": name}  # flow -> work before the first call, across hosts
        assert seen[name]["ip"] in {h.address for h in bed.hosts}
    assert [0, 1, 2] in seen["observed"]  # work -> flow while it ran
    assert "cuda='0'" in result.stdout and "cuda=''" in result.stdout  # GPU leased; CPU works see none


def test_picklable_call_arguments_reach_a_work_on_a_host(lit: Lit, tmp_path: Path) -> None:
    from tests.test_call_args import check_received

    lit.create()
    obs = tmp_path / "obs.json"
    result = lit("run", str(APPS / "pickled_args_app.py"), "--cloud", "tb", "--env", f"OBS={obs}")
    assert result.returncode == 0, result.stderr
    check_received(json.loads(obs.read_text()))


def test_a_script_work_runs_its_script_from_the_shipped_app_folder_on_a_host(lit: Lit) -> None:
    lit.create()
    app = REPO / "tests" / "script_apps" / "popen_app.py"
    result = lit("run", str(app), "--cloud", "tb", "--env", "EXIT_CODE=0")
    assert result.returncode == 0, result.stderr
    assert "count | args: --a 1" in result.stdout and "count | GREETING=hi" in result.stdout
    failed = lit("run", str(app), "--cloud", "tb", "--env", "EXIT_CODE=5")
    assert failed.returncode == 1, failed.stderr
    assert "scripts/count.py exited with code 5" in failed.stderr and "| line 29" in failed.stderr
    dag = lit("run", str(REPO / "examples" / "dag_scripts_app.py"), "--cloud", "tb")  # Payloads between hosts
    assert dag.returncode == 0, dag.stderr
    assert "publish | published: y = 3.0x + 0.989" in dag.stdout


def test_a_work_killed_on_its_host_fails_the_app(lit: Lit, bed: TestBed) -> None:
    lit.create()
    proc = lit.start("run", str(APPS / "sleep_app.py"), "--cloud", "tb", "--env", "SLEEP=60")
    host = bed.hosts[0]
    wait_line(proc, "sleeping on")
    pids = agents(host) + agents(bed.hosts[1])
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)  # its PID as this machine sees it: the agent on its fake host
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "sleeper failed" in err and "ended without a word" in err


def test_orchestrator_killed_agents_end_within_the_orphan_timeout_not_at_once(lit: Lit, bed: TestBed) -> None:
    lit.create()
    proc = lit.start("run", str(APPS / "sleep_app.py"), "--cloud", "tb", "--env", "SLEEP=120")
    wait_line(proc, "sleeping on")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = time.monotonic()
    time.sleep(2.0)
    assert any(agents(h) for h in bed.hosts), "the agent ended at once: it must wait for the orphan timeout"
    wait_for(lambda: not any(agents(h) for h in bed.hosts), ORPHAN + 10, "the orphaned agent to end")
    assert time.monotonic() - killed >= ORPHAN - 1
    for host in bed.hosts:
        assert not host.events()  # and nothing was powered off: these hosts belong to the user


def test_silent_partition_ends_the_work_and_fails_the_run_clearly(lit: Lit, bed: TestBed) -> None:
    lit.create()
    proc = lit.start("run", str(APPS / "sleep_app.py"), "--cloud", "tb", "--env", "SLEEP=120")
    wait_line(proc, "sleeping on")
    host = next(h for h in bed.hosts if agents(h))
    host.link_down()
    _out, err = proc.communicate(timeout=ORPHAN + 30)
    assert proc.returncode == 3, err
    assert f"{host.address}" in err and "unreachable" in err
    wait_for(lambda: not agents(host), ORPHAN + 10, "the partitioned agent to end its work")


def test_sshd_restarted_mid_run_the_run_continues(lit: Lit, bed: TestBed) -> None:
    lit.create()
    proc = lit.start("run", str(APPS / "sleep_app.py"), "--cloud", "tb", "--env", "SLEEP=4")
    seen = wait_line(proc, "sleeping on")
    host = next(h for h in bed.hosts if agents(h))
    host.restart_sshd()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "woke up" in "".join(seen) + out


def test_a_changed_host_key_is_refused(lit: Lit, bed: TestBed) -> None:
    lit.create()
    bed.hosts[0].rotate_host_key()
    try:
        result = lit("run", str(REPO / "examples" / "hello_app.py"), "--cloud", "tb")
    finally:
        bed.refresh_known_hosts()
    assert result.returncode == 3, result.stderr
    assert f"host key of root@{bed.hosts[0].address}:22 changed" in result.stderr


def test_trust_on_first_use_prints_fingerprints(lit: Lit, bed: TestBed) -> None:
    hosts = ",".join(f"root@{h.address}" for h in bed.hosts[:2])
    result = lit("create", "cluster", "tofu", "--provider", "ssh", "--hosts", hosts, "--key", str(bed.key_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("SHA256:") == 2 and "trusted on first use" in result.stderr
    listing = lit("list", "clusters")
    assert "tofu" in listing.stdout and "ssh" in listing.stdout
    deleted = lit("delete", "cluster", "tofu", "--yes")
    assert deleted.returncode == 0 and not lit.record_exists("tofu")


@pytest.mark.parametrize("case", ["bad-hosts", "missing-key", "wrong-key", "unreachable", "bad-name"])
def test_bad_cluster_input_is_one_clear_line_and_no_record(lit: Lit, bed: TestBed, tmp_path: Path,
                                                           case: str) -> None:
    hosts = f"root@{bed.hosts[0].address}"
    key = str(bed.key_path)
    name = "bad"
    expected_code, expected = 2, ""
    if case == "bad-hosts":
        hosts, expected = "root@@10.0.0.1:x", "is not USER@ADDR[:PORT]"
    elif case == "missing-key":
        key, expected = str(tmp_path / "nope"), "no such key file"
    elif case == "wrong-key":
        other = tmp_path / "other_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        key, expected_code, expected = str(other), 3, "the key was refused"
    elif case == "unreachable":
        base = bed.hosts[0].address.rsplit(".", 1)[0]
        hosts, expected_code, expected = f"root@{base}.250", 3, "unreachable"
    elif case == "bad-name":
        name, expected = "Bad_Name", "invalid cluster name"
    result = lit("create", "cluster", name, "--provider", "ssh", "--hosts", hosts, "--key", key, timeout=60)
    assert result.returncode == expected_code, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not lit.record_exists(name)


def test_unknown_cluster_and_unplaceable_work_are_refused_before_anything_starts(lit: Lit, bed: TestBed) -> None:
    result = lit("run", str(REPO / "examples" / "hello_app.py"), "--cloud", "nope")
    assert result.returncode == 2 and "no cluster named 'nope'" in result.stderr
    hosts = ",".join(f"root@{h.address}" for h in bed.hosts[:2])  # no GPU here
    created = lit("create", "cluster", "cpuonly", "--provider", "ssh", "--hosts", hosts, "--key",
                  str(bed.key_path), "--known-hosts", str(bed.known_hosts_path))
    assert created.returncode == 0, created.stderr
    result = lit("run", str(REPO / "examples" / "hello_app.py"), "--cloud", "cpuonly")
    assert result.returncode == 2, result.stderr
    assert "work_B cannot be placed" in result.stderr and "GPU" in result.stderr
    assert not any(agents(h) for h in bed.hosts)


def test_two_runs_at_once_never_share_a_gpu(lit: Lit, bed: TestBed, tmp_path: Path) -> None:
    lit.create()
    first = lit.start("run", str(APPS / "sleep_app.py"), "--cloud", "tb", "--env", "SLEEP=2", "--env",
                      "COMPUTE=gpu", "--env", f"OBS={tmp_path / 'one.json'}")
    second = lit.start("run", str(APPS / "sleep_app.py"), "--cloud", "tb", "--env", "SLEEP=2", "--env",
                       "COMPUTE=gpu", "--env", f"OBS={tmp_path / 'two.json'}")
    _, err1 = first.communicate(timeout=60)
    _, err2 = second.communicate(timeout=60)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert one["host"] == two["host"] == "h3" and one["gpus"] == two["gpus"] == "0"
    earlier, later = sorted((one, two), key=lambda r: r["started"])
    assert later["started"] >= earlier["ended"], "two runs held the one GPU at the same time"
    assert "waiting for 1 free GPU" in err1 + err2


def test_delete_cluster_stops_agents_left_on_the_hosts(lit: Lit, bed: TestBed) -> None:
    lit.create(orphan=600)
    proc = lit.start("run", str(APPS / "sleep_app.py"), "--cloud", "tb", "--env", "SLEEP=300")
    wait_line(proc, "sleeping on")
    os.killpg(proc.pid, signal.SIGKILL)  # leave the agent orphaned, with a long orphan timeout
    proc.wait()
    refused = lit("delete", "cluster", "tb")  # no terminal, no --yes: refused
    assert refused.returncode == 2 and "--yes" in refused.stderr
    result = lit("delete", "cluster", "tb", "--yes")
    assert result.returncode == 0, result.stderr
    assert "stopped 1 lit agents" in result.stderr
    wait_for(lambda: not any(agents(h) for h in bed.hosts), 10, "the agents to stop")
    assert not lit.record_exists("tb")


def test_requirements_install_into_a_cached_venv_from_shipped_wheels(lit: Lit, bed: TestBed, tmp_path: Path) -> None:
    import shutil

    app_dir = tmp_path / "reqs"
    shutil.copytree(APPS / "reqs", app_dir)
    demo_wheel(app_dir / "wheels")
    lit.create()
    first = lit("run", str(app_dir / "req_app.py"), "--cloud", "tb", timeout=300)
    assert first.returncode == 0, first.stderr
    assert "litdemo says 42" in first.stdout
    assert "installing requirements.txt" in first.stderr
    second = lit("run", str(app_dir / "req_app.py"), "--cloud", "tb", timeout=120)
    assert second.returncode == 0, second.stderr
    assert "installing requirements.txt" not in second.stderr  # cached by the file's hash
    assert "code already on the host" in second.stderr  # and the bundle is not sent again


def test_one_work_serves_and_another_calls_it_by_url(lit: Lit, bed: TestBed, tmp_path: Path) -> None:
    lit.create()
    obs = tmp_path / "obs.json"
    result = lit("run", str(APPS / "serve_app.py"), "--cloud", "tb", "--env", f"OBS={obs}")
    assert result.returncode == 0, result.stderr
    seen = json.loads(obs.read_text())
    assert seen["url"].startswith(f"http://{bed.hosts[0].address[:-3]}")
    assert seen["answer"]["served_by"] != seen["client"]  # across hosts
