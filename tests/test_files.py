"""Files between works (`L.Path`, `L.Payload`, `L.Drive`) end to end: locally (one store folder, hard links), on
the SSH test bed (relay: files stay on the producer's host and stream through the orchestrator) and in the fake
cloud (presigned S3 URLs, no credentials on the machines).

Apps live in tests/file_apps/. The multi-host and fake-cloud tests must run in CI: there a missing requirement
fails them instead of skipping them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

import lit as L
from tests.conftest import prefixed
from tests.support import require, wait_for, wait_line
from tests.testbed import TestBed, require_root_and_sshd, testbed_fixture

REPO = Path(__file__).resolve().parent.parent
FILE_APPS = Path(__file__).resolve().parent / "file_apps"
EXAMPLE = REPO / "examples" / "train_analyze_app.py"
METRIC = re.compile(r"^mean absolute error on held-out data: \d+\.\d+$")
MB = 1024 * 1024




def _metric(stdout: str) -> bool:
    """Whether the analyzer printed its metric."""
    return any(METRIC.match(line) for line in prefixed(stdout, "analyze"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ================================================================================================
# Locally: one store folder under $LIT_HOME
# ================================================================================================
def test_local_example_hard_links_the_model_from_the_store(run_lit: Any, lit_home: Path) -> None:
    result = run_lit(EXAMPLE, "--name", "ta")
    assert result.returncode == 0, result.stderr
    assert _metric(result.stdout), result.stdout
    run = lit_home / "runs" / "ta"
    produced = (run / "works" / "train" / "model.json").read_bytes()
    received = run / "works" / "analyze" / "model.json"
    assert received.read_bytes() == produced
    stored = run / "artifacts" / _sha(produced)
    assert stored.is_file()
    assert os.stat(received).st_ino == os.stat(stored).st_ino, "the received file is a copy, not a hard link"
    assert os.stat(stored).st_nlink >= 2
    assert os.stat(stored).st_mode & 0o222 == 0  # the store's copy is read-only


def test_local_path_never_written_fails_the_receiver_clearly(run_lit: Any) -> None:
    result = run_lit(FILE_APPS / "never_wrote_app.py")
    assert result.returncode == 1, result.stderr
    assert "consumer got" not in result.stdout
    line = next(x for x in result.stderr.splitlines() if x.startswith("error: "))
    assert "consumer failed" in line and "missing.bin" in line and "producer" in line and "never wrote" in line


def test_local_corrupt_store_copy_fails_the_receiver_clearly(run_lit: Any, lit_home: Path) -> None:
    store = lit_home / "runs" / "corrupt" / "artifacts"
    result = run_lit(FILE_APPS / "corrupt_app.py", "--name", "corrupt", env={"CORRUPT": "local", "STORE": str(store)})
    assert result.returncode == 1, result.stderr
    assert "consumer read" not in result.stdout
    line = next(x for x in result.stderr.splitlines() if x.startswith("error: "))
    assert "consumer failed" in line and "weights.bin" in line and "producer" in line and "corrupt" in line


def _check_drive_observations(obs: Path, drive_dir: Optional[Path]) -> None:
    seen = json.loads(obs.read_text())
    for me, other in (("w0", "w1"), ("w1", "w2"), ("w2", "w0")):
        assert seen[me]["listing"] == [".w0rc", "w0.txt", "w1.txt", "w2.txt"], seen
        assert seen[me]["got"] == f"written by {other}", seen
    assert seen["final"] == [".w0rc", "w0.txt", "w1.txt"], seen
    assert seen["missing"] == "FileNotFoundError", seen  # deleting what is not there says so
    if drive_dir is not None:  # nothing half-written left beside the files
        assert sorted(p.name for p in drive_dir.iterdir()) == [".w0rc", "w0.txt", "w1.txt"]
        assert (drive_dir / "w1.txt").read_text() == "written by w1"


def test_local_drive_shared_by_three_parallel_works(run_lit: Any, lit_home: Path, tmp_path: Path) -> None:
    obs = tmp_path / "drive.json"
    result = run_lit(FILE_APPS / "drive_app.py", env={"OBS": str(obs)})
    assert result.returncode == 0, result.stderr
    _check_drive_observations(obs, lit_home / "drives" / "shared")


def test_local_payload_attribute_to_run_argument(run_lit: Any) -> None:
    result = run_lit(FILE_APPS / "payload_app.py")
    assert result.returncode == 0, result.stderr
    assert "payload weights [0.5, -1.25, 3.0, 42.0] total 44.25" in prefixed(result.stdout, "reader")


def test_storage_names_are_the_same_objects_as_the_top_level_ones() -> None:
    import lit.storage

    assert lit.storage.Path is L.Path
    assert lit.storage.Drive is L.Drive
    assert lit.storage.Payload is L.Payload
    assert L.storage is lit.storage


@pytest.mark.parametrize("app, expected", [
    ("lightning_drive_app.py", ["work_2 | ['a.txt']", "work_2 | False", "work_2 | True", "work_2 | Hello World !"]),
    ("lightning_payload_app.py", ["dst | payload.value = 42"]),
])
def test_lightnings_drive_and_payload_examples_run_with_only_imports_renamed(run_lit: Any, app: str,
                                                                             expected: list[str]) -> None:
    source = (FILE_APPS / app).read_text()
    code = [x for x in source.splitlines() if x.strip() and not x.lstrip().startswith("#")]
    mentions = [x for x in code if re.search(r"\blit\b", x.replace("lit://", ""))]
    assert mentions and all(x.startswith(("from lit import", "from lit.storage import")) for x in mentions), mentions
    result = run_lit(FILE_APPS / app)
    assert result.returncode == 0, result.stderr
    lines = [x.rstrip() for x in result.stdout.splitlines()]
    for line in expected:
        assert line in lines, result.stdout


# ================================================================================================
# The SSH test bed: relay store (files stay on the producer's host)
# ================================================================================================
@pytest.fixture(scope="module")
def bed() -> Iterator[TestBed]:
    require(require_root_and_sshd(), "the SSH test bed")
    yield from testbed_fixture(3)


@pytest.fixture
def tb(tmp_path: Path, bed: TestBed) -> Iterator[Any]:
    """The `lit` CLI with a private LIT_HOME and a cluster "tb" of the bed's three hosts (h3 with one GPU)."""
    from tests.test_ssh_cluster import Lit

    runner = Lit(tmp_path, bed)
    runner.create()
    yield runner
    runner.cleanup()
    for host in bed.hosts:  # no agent of a test outlives it; no run's files fill the hosts' tmpfs
        if not host.link_is_up:
            host.link_up()
        host.exec(["sh", "-c", "pkill -9 -f lit.runtime.agent; rm -rf /root/.lit/gpu-leases /root/.lit/runs"])


def _has(host: Any, path: str) -> bool:
    return host.exec(["test", "-f", path]).returncode == 0


def _hosts_with(bed: TestBed, path: str) -> list[Any]:
    return [h for h in bed.hosts if _has(h, path)]


def test_bed_example_moves_the_model_between_hosts_that_share_no_disk(tb: Any, bed: TestBed) -> None:
    result = tb("run", str(EXAMPLE), "--cloud", "tb", "--name", "ta")
    assert result.returncode == 0, result.stderr
    assert _metric(result.stdout), result.stdout
    works = "/root/.lit/runs/ta/works"
    (trainer,) = _hosts_with(bed, f"{works}/train/model.json")
    (analyzer,) = _hosts_with(bed, f"{works}/analyze/model.json")
    assert trainer.name == "h3"  # the GPU work on the GPU host
    assert analyzer is not trainer
    # /root is private per host: the analyzer's host never had the trainer's folder; it got the file anyway.
    assert not _has(analyzer, f"{works}/train/model.json") and not _has(trainer, f"{works}/analyze/model.json")
    produced = trainer.exec(["cat", f"{works}/train/model.json"], check=True).stdout
    received = analyzer.exec(["cat", f"{works}/analyze/model.json"], check=True).stdout
    assert received == produced and json.loads(received)["slope"] > 2.9
    cache = f"/root/.lit/runs/ta/artifacts/{_sha(produced.encode())}"
    assert _hosts_with(bed, cache) == [trainer]  # kept on the producer's host only


def test_bed_corrupt_cache_on_the_producer_host_fails_the_receiver(tb: Any, bed: TestBed, tmp_path: Path) -> None:
    marker = tmp_path / "sha"
    proc = tb.start("run", str(FILE_APPS / "corrupt_app.py"), "--cloud", "tb", "--name", "corrupt",
                    "--env", "CORRUPT=marker", "--env", f"MARKER={marker}")
    wait_for(lambda: marker.exists() and marker.read_text(), 60, "the flow to publish the producer's sha256")
    cache = f"/root/.lit/runs/corrupt/artifacts/{marker.read_text()}"
    (producer_host,) = _hosts_with(bed, cache)
    flip = ("import os, sys; p = sys.argv[1]; os.chmod(p, 0o644); f = open(p, 'r+b'); f.seek(100); "
            "b = f.read(1); f.seek(100); f.write(bytes([b[0] ^ 255])); f.close()")
    producer_host.exec([producer_host.python, "-c", flip, cache], check=True)
    marker.with_name("sha.done").touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "consumer read" not in out
    line = next(x for x in err.splitlines() if x.startswith("error: "))
    assert "consumer failed" in line and "weights.bin" in line and "producer" in line and "corrupt" in line


def _rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in kB; (0, 0) once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    fields = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M))
    return int(fields.get("VmRSS", 0)), int(fields.get("VmHWM", 0))


BIG_MB = 200
MEMORY_BOUND_MB = 150


def test_bed_200_mb_through_the_orchestrator_with_bounded_memory(tb: Any, bed: TestBed) -> None:
    started = time.monotonic()
    proc = tb.start("run", str(FILE_APPS / "big_app.py"), "--cloud", "tb", "--name", "big",
                    "--env", f"SIZE_MB={BIG_MB}")
    peak = {"rss": 0, "hwm": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, hwm = _rss_kb(proc.pid)
            if rss:
                peak["rss"], peak["hwm"] = max(peak["rss"], rss), max(peak["hwm"], hwm)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=100)
    finally:
        done.set()
        sampler.join()
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, err
    wrote = re.search(r"wrote \d+ MB sha256 (\w+) at ([\d.]+)", out)
    got = re.search(r"received (\d+) bytes sha256 (\w+) ok=True at ([\d.]+)", out)
    assert wrote and got, out
    assert int(got.group(1)) == BIG_MB * MB and got.group(2) == wrote.group(1)
    works = "/root/.lit/runs/big/works"
    (producer_host,) = _hosts_with(bed, f"{works}/producer/big.bin")
    (consumer_host,) = _hosts_with(bed, f"{works}/consumer/big.bin")
    assert producer_host is not consumer_host
    transfer = float(got.group(3)) - float(wrote.group(2))
    peak_mb = max(peak["rss"], peak["hwm"]) / 1024
    print(f"\n200 MB relay: lit peak RSS {peak_mb:.0f} MB (VmHWM {peak['hwm'] / 1024:.0f} MB), producer done -> "
          f"consumer checked {transfer:.1f} s, whole run {elapsed:.1f} s")
    assert peak_mb < MEMORY_BOUND_MB, (f"lit's RSS peaked at {peak_mb:.0f} MB moving a {BIG_MB} MB file "
                                       f"(bound {MEMORY_BOUND_MB} MB): it is not streaming")


CUT_MB = 150
ATTACH_PROCESS = "lit/runtime/host/attach.py"  # lit's relay to a detached agent (run by path from the bundle)


def _cut_relay_and_finish(proc: subprocess.Popen[str], host: Any) -> tuple[str, str]:
    """Kill lit's relay process on `host` (the SSH channel to its agent ends), then wait for the run to end (the
    tb fixture kills it if it does not)."""
    assert host.exec(["pkill", "-f", ATTACH_PROCESS]).returncode == 0, "no relay to kill"
    return proc.communicate(timeout=120)


@pytest.mark.parametrize("side", ["consumer", "producer"])
def test_bed_a_file_cut_by_a_lost_connection_is_sent_again(tb: Any, bed: TestBed, side: str) -> None:
    """Chunks are not replayed after a reconnect: a file on its way when the consumer's (or the producer's)
    connection drops is asked for again, and arrives whole."""
    name = f"cut-{side}"
    proc = tb.start("run", str(FILE_APPS / "big_app.py"), "--cloud", "tb", "--name", name,
                    "--env", f"SIZE_MB={CUT_MB}")
    wait_line(proc, f"wrote {CUT_MB} MB")  # the consumer asks for the file now
    works = f"/root/.lit/runs/{name}/works"
    receiving = wait_for(lambda: next((h for h in bed.hosts if h.exec(
        ["sh", "-c", f"ls {works}/consumer/.big.bin.lit-* 2>/dev/null"]).stdout.strip()), None), 30,
        "the consumer to start receiving")
    (producer,) = _hosts_with(bed, f"{works}/producer/big.bin")
    out, err = _cut_relay_and_finish(proc, receiving if side == "consumer" else producer)
    assert proc.returncode == 0, err
    assert f"received {CUT_MB * MB} bytes" in out and "ok=True" in out, out
    assert "reconnected to" in err, err
    # nothing half-written left behind on the consumer's host
    assert not receiving.exec(["sh", "-c", f"ls -a {works}/consumer | grep '[.]lit-'"]).stdout.strip()


def test_bed_a_drive_upload_cut_by_a_lost_connection_is_sent_again(tb: Any, bed: TestBed, tmp_path: Path) -> None:
    proc = tb.start("run", str(FILE_APPS / "drive_big_app.py"), "--cloud", "tb", "--name", "cut-put",
                    "--env", f"SIZE_MB={CUT_MB}")
    drive = tmp_path / "home" / "drives" / "big"
    wait_line(proc, f"putting {CUT_MB} MB")
    wait_for(lambda: list(drive.glob(".big.bin.lit-*")), 30, "the upload to start")
    (putter,) = _hosts_with(bed, "/root/.lit/runs/cut-put/works/putter/big.bin")
    out, err = _cut_relay_and_finish(proc, putter)
    assert proc.returncode == 0, err
    assert "reconnected to" in err, err
    sha = re.search(r"put \d+ MB sha256 (\w+)", out)
    assert sha, out
    assert _sha_file(drive / "big.bin") == sha.group(1)  # whole, not the part sent before the cut
    assert sorted(p.name for p in drive.iterdir()) == ["big.bin"]  # no partial upload left


def _sha_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(MB), b""):
            digest.update(block)
    return digest.hexdigest()


def test_bed_drive_shared_by_three_parallel_works_lives_with_the_orchestrator(tb: Any, bed: TestBed,
                                                                             tmp_path: Path) -> None:
    obs = tmp_path / "drive.json"
    result = tb("run", str(FILE_APPS / "drive_app.py"), "--cloud", "tb", "--name", "drive", "--env", f"OBS={obs}")
    assert result.returncode == 0, result.stderr
    _check_drive_observations(obs, tmp_path / "home" / "drives" / "shared")
    placed = {w: [h.name for h in bed.hosts if h.exec(["test", "-d", f"/root/.lit/runs/drive/works/{w}"]).returncode
                  == 0] for w in ("w0", "w1", "w2")}
    assert all(len(hosts) == 1 for hosts in placed.values()), placed
    assert len({hosts[0] for hosts in placed.values()}) >= 2, placed  # the works ran on different hosts
    # The drive is on no host: the only copies there are the ones each work got (each removed its own after put).
    found = sorted(line for h in bed.hosts
                   for line in h.exec(["find", "/root/.lit", "-name", "w?.txt"]).stdout.split())
    assert found == [f"/root/.lit/runs/drive/works/{me}/{other}.txt"
                     for me, other in (("w0", "w1"), ("w1", "w2"), ("w2", "w0"))], found


def test_bed_payload_attribute_to_run_argument_across_hosts(tb: Any, bed: TestBed) -> None:
    result = tb("run", str(FILE_APPS / "payload_app.py"), "--cloud", "tb", "--name", "payload")
    assert result.returncode == 0, result.stderr
    assert "payload weights [0.5, -1.25, 3.0, 42.0] total 44.25" in prefixed(result.stdout, "reader")
    trainer = [h for h in bed.hosts if h.exec(["test", "-d", "/root/.lit/runs/payload/works/trainer"]).returncode == 0]
    reader = [h for h in bed.hosts if h.exec(["test", "-d", "/root/.lit/runs/payload/works/reader"]).returncode == 0]
    assert len(trainer) == len(reader) == 1 and trainer != reader


# ================================================================================================
# The fake cloud (aws): presigned S3 URLs, no credentials on the machines
# ================================================================================================
@pytest.fixture(scope="module")
def cloud() -> Iterator[Any]:
    from tests.fakecloud import fakecloud_fixture, requirement

    require(requirement(), "the fake cloud")
    yield from fakecloud_fixture()


@pytest.fixture(scope="module")
def aws_home(cloud: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_aws_run import create_cluster

    home = tmp_path_factory.mktemp("aws-files") / "home"
    create_cluster(cloud, home, "files")
    return home


def _leftovers(ec2: Any) -> list[str]:
    """Instances of the module's cluster that lit left (not terminated); terminated here, so the next test starts
    clean, and returned for the test to fail on."""
    left = [i["InstanceId"] for r in ec2.describe_instances(Filters=[
        {"Name": "tag:lit:cluster", "Values": ["files"]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])["Reservations"]
        for i in r["Instances"]]
    if left:
        ec2.terminate_instances(InstanceIds=left)
    return left


AGENT_ENV = ("for p in $(pgrep -f '^[^ ]*python[^ ]* -m lit[.]runtime[.]agent detached'); do echo \"== $p\"; "
             "tr '\\0' '\\n' < /proc/$p/environ; done; for h in /root /home/*; do test -e $h/.aws && echo HAS_DOT_AWS; "
             "done; true")


def test_aws_example_moves_the_model_through_presigned_urls_only(cloud: Any, aws_home: Path, tmp_path: Path) -> None:
    from tests.test_aws_run import EXTERNAL_ID, ROLE, Lit

    session = cloud.session(ROLE, EXTERNAL_ID)
    ec2, s3 = cloud.client(session, "ec2"), cloud.client(session, "s3")
    runner = Lit(cloud, aws_home, tmp_path)
    seen: dict[str, list[str]] = {}  # instance id -> what its host showed while an agent ran on it
    done = threading.Event()

    def watch() -> None:  # the agents live only while the run does: look at every host while it runs
        while not done.is_set():
            for iid, host in cloud.hosts_for_instances().items():
                if host.powered_on and iid not in seen:
                    try:
                        shown = host.exec(["sh", "-c", AGENT_ENV], timeout=5).stdout
                    except Exception:  # the host went away (stopped, terminated) meanwhile
                        continue
                    if "== " in shown:
                        seen[iid] = shown.splitlines()
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    proc = runner.start(str(EXAMPLE), "--cloud", "files", "--name", "ta-aws")
    try:
        out, err = proc.communicate(timeout=100)
    finally:
        done.set()
        watcher.join()
        left = _leftovers(ec2)
    assert proc.returncode == 0, err
    assert _metric(out), out
    assert not left, f"instances left: {left}"
    bucket = json.loads((aws_home / "clusters" / "files" / "cluster.json").read_text())["settings"]["outputs"]["bucket"]
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="runs/ta-aws/artifacts/").get("Contents", [])
    assert len(listing) == 1, listing
    key = listing[0]["Key"]
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert key == f"runs/ta-aws/artifacts/{_sha(body)}" and json.loads(body)["slope"] > 2.9
    # No AWS credentials on the work machines: none in any agent's environment, no ~/.aws.
    assert len(seen) == 2, f"an agent was not seen on each work's instance during the run: {seen}"
    for iid, lines in seen.items():
        assert any(x.startswith("PYTHONPATH=") and "/.lit/bundles/" in x for x in lines), (iid, lines)  # lit's agent
        assert "USER=ubuntu" in lines and "HOME=/home/ubuntu" in lines, (iid, lines)  # the image's user, not root
        assert not [x for x in lines if x.startswith("AWS_")], (iid, lines)
        assert "HAS_DOT_AWS" not in lines, iid


def test_aws_payload_attribute_to_run_argument_through_the_bucket(cloud: Any, aws_home: Path, tmp_path: Path) -> None:
    from tests.test_aws_run import EXTERNAL_ID, ROLE, Lit

    session = cloud.session(ROLE, EXTERNAL_ID)
    ec2, s3 = cloud.client(session, "ec2"), cloud.client(session, "s3")
    result = Lit(cloud, aws_home, tmp_path).run(str(FILE_APPS / "payload_app.py"), "--cloud", "files", "--name",
                                                "payload-aws")
    left = _leftovers(ec2)
    assert result.returncode == 0, result.stderr
    assert not left, f"instances left: {left}"
    assert "payload weights [0.5, -1.25, 3.0, 42.0] total 44.25" in prefixed(result.stdout, "reader")
    bucket = json.loads((aws_home / "clusters" / "files" / "cluster.json").read_text())["settings"]["outputs"]["bucket"]
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="runs/payload-aws/artifacts/").get("Contents", [])
    assert len(listing) == 1, listing  # the pickled payload, content-addressed, in the run's folder


def test_aws_drive_shared_by_three_parallel_works_lives_in_the_bucket(cloud: Any, aws_home: Path,
                                                                      tmp_path: Path) -> None:
    from tests.test_aws_run import EXTERNAL_ID, ROLE, Lit

    session = cloud.session(ROLE, EXTERNAL_ID)
    ec2, s3 = cloud.client(session, "ec2"), cloud.client(session, "s3")
    obs = tmp_path / "drive.json"
    result = Lit(cloud, aws_home, tmp_path).run(str(FILE_APPS / "drive_app.py"), "--cloud", "files", "--name",
                                                "drive-aws", "--env", f"OBS={obs}")
    left = _leftovers(ec2)
    assert result.returncode == 0, result.stderr
    assert not left, f"instances left: {left}"
    _check_drive_observations(obs, None)
    assert not (aws_home / "drives").exists()  # not kept by lit: in the cluster's bucket
    bucket = json.loads((aws_home / "clusters" / "files" / "cluster.json").read_text())["settings"]["outputs"]["bucket"]
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="drives/shared/").get("Contents", [])
    keys = ["drives/shared/.w0rc", "drives/shared/w0.txt", "drives/shared/w1.txt"]
    assert sorted(o["Key"] for o in listing) == keys, listing
    body = s3.get_object(Bucket=bucket, Key="drives/shared/w1.txt")["Body"].read()
    assert body == b"written by w1"
    for key in keys:  # the next run of this module starts clean
        s3.delete_object(Bucket=bucket, Key=key)
