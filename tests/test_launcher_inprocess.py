"""ClusterLauncher in-process, against a fake provider: no root, no sshd, no cloud.

The launcher's seams are injected (tests swap the seam, they don't patch internals): `resolve` gives the fake
cluster and provider, `connector` gives connections that run the host-side commands on this machine, with HOME a
temp folder per machine. So the real step order runs: the bundle is unpacked by runtime/host/extract.py, the real
detached agent starts from it, and runtime/host/attach.py relays to it. The test waits on conditions, never on time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from lit.provisioner.base import CannotPlace, Cluster, Connection, Lease, Machine, Progress, Provider, Unreachable
from lit.provisioner.connector import Connector
from lit.provisioner.launcher import ClusterLauncher
from lit.runtime.compute import CloudCompute
from lit.runtime.errors import InfrastructureError
from lit.runtime.loader import load_app
from lit.runtime.orchestrator import Orchestrator
from lit.runtime.transport import AgentSpec

pytestmark = pytest.mark.timeout(120)

ORPHAN = 20.0
APP = '''
import lit as L


class Work(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(parallel=True)

    def run(self) -> None:
        print("ran")


class Flow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = Work(), Work(), Work()

    def run(self) -> None:
        for work in (self.a, self.b, self.c):
            work.run()
        if all(work.has_succeeded for work in (self.a, self.b, self.c)):
            self.stop("done")


app = L.LightningApp(Flow())
'''


class FakeProvider(Provider):
    """A cloud whose machines are made per work: `busy` ones are never free; `boots` says how many connection
    attempts a new machine refuses before its 'sshd' answers (None: never)."""

    name = "fake"

    def __init__(self, busy: tuple[str, ...] = (), boots: Optional[int] = 0, fail_terminate: bool = False) -> None:
        self.busy = busy
        self.boots = boots
        self.fail_terminate = fail_terminate
        self.lock = threading.Lock()
        self.tried: list[str] = []
        self.acquired: dict[str, str] = {}  # work -> machine id
        self.released: list[str] = []
        self.terminated: list[str] = []

    def can_ever_place(self, cluster: Cluster, compute: CloudCompute) -> Optional[str]:
        if compute.gpus > max(m.gpus for m in cluster.machines):
            return f"no fake machine has {compute.gpus} GPU(s)"
        return None

    def candidates(self, cluster: Cluster, compute: CloudCompute, load: dict[str, int]) -> list[Machine]:
        return sorted(cluster.machines, key=lambda m: load.get(m.id, 0))  # stable: the record's order breaks ties

    def acquire(self, cluster: Cluster, compute: CloudCompute, machine: Machine, run_id: str, work: str,
                progress: Progress, app: str = "", made: Optional[Callable[[Lease], None]] = None,
                cancelled: Optional[Callable[[], bool]] = None) -> Optional[Lease]:
        with self.lock:
            self.tried.append(machine.id)
            if machine.id in self.busy:
                return None
            self.acquired[work] = machine.id
        lease = Lease(cluster.name, machine, instance_type="fake.small", price_per_hour=3.6)
        if made is not None:
            made(lease)
        return lease

    def release(self, cluster: Cluster, lease: Lease) -> None:
        with self.lock:
            self.released.append(lease.machine.id)

    def terminate(self, cluster: Cluster, lease: Lease) -> None:
        if self.fail_terminate:
            raise InfrastructureError(f"{lease.machine.id}: the fake cloud refused")
        with self.lock:
            self.terminated.append(lease.machine.id)

    def leftover_hint(self, cluster: Cluster, machine_ids: list[str]) -> str:
        return f"Remove them with `fake rm {' '.join(machine_ids)}`"


class LocalChannel:
    """A command's stdin/stdout, as paramiko's Channel offers them to the relay."""

    def __init__(self, command: str, env: dict[str, str], cwd: str) -> None:
        self.proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, cwd=cwd)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.exit_status = -1
        self.status_event = threading.Event()
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self) -> None:
        self.exit_status = self.proc.wait()
        self.status_event.set()

    def fileno(self) -> int:
        return self.stdout.fileno()

    def recv(self, size: int) -> bytes:
        return os.read(self.stdout.fileno(), size)

    def sendall(self, data: bytes) -> None:
        self.stdin.write(data)
        self.stdin.flush()

    def shutdown_write(self) -> None:
        self.stdin.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # as sshd ends a session's command when its channel closes
        self.proc.wait()
        for pipe in (self.stdin, self.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class LocalConnection(Connection):
    """A 'connection' to a fake machine: commands run here, with HOME its own folder."""

    def __init__(self, machine: Machine, home: Path, agents: list[int]) -> None:
        self.machine = machine
        self.home = home
        self.agents = agents
        self.env = {**os.environ, "HOME": str(home)}
        self.env.pop("PYTHONPATH", None)
        self.channels: list[LocalChannel] = []

    def run(self, command: str, timeout: float = 60.0, stdin: Optional[bytes] = None) -> tuple[int, str, str]:
        done = subprocess.run(["sh", "-c", command], input=stdin or b"", capture_output=True, env=self.env,
                              cwd=self.home, timeout=timeout)
        out = done.stdout.decode(errors="replace")
        words = out.split()
        if len(words) >= 2 and words[0] == "ready":
            self.agents.append(int(words[1]))  # ended by the test if the run did not end it
        return done.returncode, out, done.stderr.decode(errors="replace")

    def channel(self, command: str) -> LocalChannel:
        channel = LocalChannel(command, self.env, str(self.home))
        self.channels.append(channel)
        return channel

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


class LocalConnector(Connector):
    """Machines are folders under `root`; a machine refuses `provider.boots` connections first."""

    def __init__(self, root: Path, provider: FakeProvider) -> None:
        self.root = root
        self.provider = provider
        self.lock = threading.Lock()
        self.attempts: dict[str, int] = {}
        self.attempted = threading.Event()
        self.agents: list[int] = []

    def wait(self, machine: Machine, timeout: float) -> None:
        return None

    def connect(self, machine: Machine, key_path: str, known_hosts: Path, timeout: float = 10.0,
                keepalive: float = 5.0) -> LocalConnection:
        with self.lock:
            count = self.attempts[machine.id] = self.attempts.get(machine.id, 0) + 1
        self.attempted.set()
        boots = self.provider.boots
        if boots is None or count <= boots:
            raise Unreachable(f"{machine.target}: unreachable: Connection refused")
        home = self.root / machine.id
        home.mkdir(parents=True, exist_ok=True)
        return LocalConnection(machine, home, self.agents)


class Bed:
    def __init__(self, tmp_path: Path, homes: Path, provider: FakeProvider, machines: int = 3) -> None:
        self.provider = provider
        self.cluster = Cluster("fake", "fake", tuple(
            Machine(f"m{i}", "127.0.0.1", "me", cpus=4, python=sys.executable) for i in range(1, machines + 1)),
            key_path=str(tmp_path / "key"), orphan_timeout=ORPHAN)
        self.connector = LocalConnector(homes, provider)
        self.app_file = tmp_path / "app" / "app.py"
        self.app_file.parent.mkdir()
        self.app_file.write_text(APP)
        self.run_dir = tmp_path / "run"
        self.launcher = ClusterLauncher("fake", "run-1", self.app_file, resolve=self.resolve,
                                        connector=self.connector)

    def resolve(self, name: str) -> tuple[Cluster, Provider]:
        assert name == "fake"
        return self.cluster, self.provider

    def spec(self, work: str = "root.a", gpus: int = 0) -> AgentSpec:
        return AgentSpec(work, CloudCompute("gpu" if gpus else "cpu"), self.run_dir)

    def end_agents(self) -> None:
        for pid in self.connector.agents:  # what `kill -9 -- -PID PID` on a host does
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def bed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Bed]]:
    monkeypatch.setenv("LIT_HOME", str(tmp_path / "home"))
    # The machines' homes hold the agents' unix sockets: a short path (AF_UNIX allows about 100 bytes).
    homes = Path(tempfile.mkdtemp(prefix="lit-m-", dir="/tmp"))
    made: list[Bed] = []

    def make(provider: Optional[FakeProvider] = None, machines: int = 3) -> Bed:
        made.append(Bed(tmp_path, homes, provider or FakeProvider(), machines))
        return made[-1]

    yield make
    for one in made:
        one.end_agents()
    shutil.rmtree(homes, ignore_errors=True)


def test_check_refuses_a_compute_no_machine_can_take(bed: Callable[..., Bed]) -> None:
    b = bed()
    b.launcher.check([("root.a", CloudCompute("cpu"))])
    with pytest.raises(CannotPlace, match=r"^a cannot be placed: no fake machine has 1 GPU\(s\)$"):
        b.launcher.check([("root.a", CloudCompute("cpu")), ("root.a", CloudCompute("gpu"))])
    assert b.provider.tried == []  # refused before anything started


def test_a_run_spreads_its_works_in_the_providers_order_and_removes_every_machine(bed: Callable[..., Bed]) -> None:
    b = bed(FakeProvider(busy=("m1",)), machines=4)
    outcome = Orchestrator(load_app(b.app_file), b.app_file, b.run_dir, launcher=b.launcher,
                           orphan_timeout=ORPHAN).run()
    assert outcome.exit_code == 0, outcome.message
    p = b.provider
    assert sorted(p.acquired) == ["root.a", "root.b", "root.c"]
    assert sorted(p.acquired.values()) == ["m2", "m3", "m4"]  # m1 is busy: each work on its own machine
    assert p.tried[0] == "m1"  # the provider's first candidate is tried first
    assert sorted(p.terminated) == ["m2", "m3", "m4"]  # the app ended: what was made for it is removed
    assert b.launcher.still_up() == [] and b.launcher.leftovers() == []
    report = b.launcher.machine_report()
    assert sorted(report) == ["root.a", "root.b", "root.c"]
    assert {r["instance_type"] for r in report.values()} == {"fake.small"}
    # the bundle went to each machine once, unpacked by the host script, complete
    for machine in ("m2", "m3", "m4"):
        (bundle,) = (b.connector.root / machine / ".lit" / "bundles").iterdir()
        assert (bundle / ".complete").is_file()


def test_a_booting_machine_is_waited_for(bed: Callable[..., Bed]) -> None:
    b = bed(FakeProvider(boots=3))
    launched = b.launcher.launch(b.spec(), b.app_file)
    hello = _read_until(launched.transport, b'"t":"hello"')
    assert b"SSH ready" in hello and b"agent up on me@127.0.0.1:22" in hello
    assert b.connector.attempts["m1"] == 4  # refused three times, then connected
    launched.transport.close()  # lit is done with the work: the relay ends
    assert launched.transport.wait(60) == 0
    b.launcher.release("root.a", final=True)
    b.launcher.close()
    assert b.provider.terminated == ["m1"] and b.launcher.still_up() == []


def test_a_failed_start_removes_its_machine(bed: Callable[..., Bed]) -> None:
    b = bed()
    b.cluster = Cluster(b.cluster.name, "fake", tuple(
        Machine(m.id, m.address, m.user, python=str(Path(b.run_dir) / "no-python")) for m in b.cluster.machines),
        b.cluster.key_path, orphan_timeout=ORPHAN)
    b.launcher = ClusterLauncher("fake", "run-1", b.app_file, resolve=b.resolve, connector=b.connector)
    launched = b.launcher.launch(b.spec(), b.app_file)
    assert launched.transport.wait(60) == 1
    failure = launched.transport.failure()
    assert isinstance(failure, InfrastructureError) and "unpacking the code" in str(failure)
    assert b.provider.terminated == ["m1"]  # made for the work, never ready: removed at once
    b.launcher.release("root.a", final=True)
    b.launcher.close()
    assert b.launcher.still_up() == [] and b.launcher.leftovers() == []


def test_cancelled_while_booting_nothing_is_left_up(bed: Callable[..., Bed]) -> None:
    b = bed(FakeProvider(boots=None))  # never answers
    launched = b.launcher.launch(b.spec(), b.app_file)
    assert b.connector.attempted.wait(60)
    launched.transport.close()  # the app ended
    assert launched.transport.wait(60) == 0  # cancelled is not a failure
    assert b.provider.terminated == ["m1"]
    b.launcher.close()
    assert b.launcher.still_up() == []


def test_a_machine_that_cannot_be_removed_is_listed_with_the_providers_hint(bed: Callable[..., Bed]) -> None:
    b = bed(FakeProvider(boots=None, fail_terminate=True))
    launched = b.launcher.launch(b.spec(), b.app_file)
    assert b.connector.attempted.wait(60)
    b.launcher.close()  # cancels the work's thread, then tries once more to remove what it made
    assert launched.transport.wait(60) == 0
    assert b.launcher.still_up() == ["m1"]
    assert b.launcher.leftovers() == ["still up: m1. Remove them with `fake rm m1`"]


def _read_until(transport: Any, marker: bytes) -> bytes:
    """What the launcher and the agent sent, up to the line holding `marker` (blocking reads on the socket)."""
    import select

    seen = b""
    while marker not in seen:
        readable, _, _ = select.select([transport], [], [], 60)
        assert readable, f"no {marker!r} within a minute: {seen!r}"
        data = transport.read()
        assert data, f"end of stream before {marker!r}: {seen!r}"
        seen += data
    return seen
