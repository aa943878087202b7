"""FakeCloud: moto in server mode (EC2, IAM, STS, S3 over HTTP) on a private address of a test bed's bridge.

The bridge comes from tests/testbed.py (one host: the bed needs at least one), so fake hosts in the bed's network
namespaces reach moto too. moto runs as `python -m tests.fakecloud.motod ... -- -H <bridge address> -p <free port>`
(moto's server, plus the reconciler of instances.py as a thread: every EC2 instance running in moto becomes a
test-bed host at its private address, see `hosts_for_instances` / `wait_host`) in a session of its own, with the
images of amis.py. Everything (moto's PID and start time, the beds' directories) is recorded in `<dir>/state.json`
before it is started, so `down` works from the record after a crash, and stops only the process it recorded.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from lit.stacks import VPC_CIDR
from tests.testbed import Host, TestBed, _proc_start, _same_process, require_root_and_sshd

from .amis import write_amis_file
from .authz import ACCOUNT, ADMIN, OPERATOR
from .aws import DEFAULT_REGION, DUMMY_KEY, FakeCloudError, assumed_session, base_session

STATE_FILE = "state.json"
ENGINE = "tests.fakecloud.engine:MotoEngine"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/lit-byoc"  # the customer's role every fake cloud has from the start
EXTERNAL_ID = "lit-test-external-id"  # the external ID its trust policy requires


REPO_ROOT = str(Path(__file__).resolve().parent.parent.parent)


def default_dir() -> Path:
    """The directory the command line uses: $LIT_FAKECLOUD_DIR or /tmp/lit-fakecloud."""
    return Path(os.environ.get("LIT_FAKECLOUD_DIR") or "/tmp/lit-fakecloud")


def requirement() -> Optional[str]:
    """Why the fake cloud cannot run here (root for the bridge, moto installed, the instances' OS image built), or
    None."""
    reason = require_root_and_sshd()
    if reason:
        return reason
    for module in ("moto.server", "boto3", "pulumi", "pulumi_aws"):
        try:
            __import__(module)
        except ImportError as exc:
            return f"{module} is not installed ({exc}); pip install 'moto[server]' boto3 pulumi pulumi-aws"
    from .image import missing_reason

    return missing_reason()


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def _answers(url: str, timeout: float = 1.0) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to moto, never a proxy
    try:
        with opener.open(f"{url}/moto-api/data.json", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def lit_policies(external_id: Optional[str], role_arn: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The permissions and trust policies `lit cluster policy` prints for the role (the operator: ACCOUNT)."""
    args = ["--account", ACCOUNT, "--role-arn", role_arn] + (["--external-id", external_id] if external_id else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LIT_"))}
    result = subprocess.run([sys.executable, "-m", "lit", "cluster", "policy", *args], capture_output=True,
                            text=True, env=env, cwd=REPO_ROOT, timeout=60)
    if result.returncode != 0:
        raise FakeCloudError(f"`lit cluster policy` failed: {result.stderr.strip()}")
    chunks = [chunk.split("\n", 1)[1] for chunk in result.stdout.split("# ")[1:]]
    permissions, trust = (json.loads(chunk) for chunk in chunks)
    return permissions, trust


class FakeCloud:
    """A running fake cloud: `.endpoint`, `.env` (the variables that point lit at it), `.session(role)`."""

    def __init__(self, base_dir: Path, owns_dir: bool) -> None:
        self.base_dir = base_dir
        self.owns_dir = owns_dir
        self.region = DEFAULT_REGION
        self.boot = 0.0  # seconds each instance takes to boot
        self.address = ""
        self.port = 0
        self.moto_pid: Optional[int] = None
        self.moto_start: Optional[int] = None
        self.bed: Optional[TestBed] = None
        self.bed_dir: Optional[Path] = None
        self.instances_dir = base_dir / "instances"
        self.creator = (os.getpid(), _proc_start(os.getpid()))
        self.created_at = time.time()
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._is_down = False

    def __repr__(self) -> str:
        return f"<FakeCloud {self.endpoint or '(not started)'} in {self.base_dir}>"

    def __enter__(self) -> FakeCloud:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ----- what it offers
    @property
    def state_path(self) -> Path:
        return self.base_dir / STATE_FILE

    @property
    def log_path(self) -> Path:
        return self.base_dir / "moto.log"

    @property
    def reconciler_log_path(self) -> Path:
        return self.base_dir / "reconciler.log"

    @property
    def credentials_path(self) -> Path:
        return self.base_dir / "credentials.json"

    def credentials(self, user: str = OPERATOR) -> tuple[str, str]:
        """(access key id, secret) of the operator (allowed sts:AssumeRole only) or of ADMIN (the fixtures')."""
        found = json.loads(self.credentials_path.read_text())[user]
        return found["access_key_id"], found["secret_access_key"]

    @property
    def amis_path(self) -> Path:
        return self.base_dir / "amis.json"

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}:{self.port}" if self.address else ""

    @property
    def bridge_address(self) -> str:
        return self.address

    @property
    def ssh_cidr(self) -> str:
        return f"{self.address}/32"

    @property
    def env(self) -> dict[str, str]:
        """What makes lit (and boto3) use the fake cloud: the endpoint, dummy credentials, the engine."""
        no_proxy = ",".join(p for p in (os.environ.get("NO_PROXY") or os.environ.get("no_proxy"), self.address) if p)
        key, secret = self.credentials()  # the operator's: all lit does goes through the role it assumes
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": key,
                "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": self.region,
                "LIT_STACK_ENGINE": ENGINE, "LIT_SSH_CIDR": self.ssh_cidr,
                "NO_PROXY": no_proxy, "no_proxy": no_proxy,
                # The engine lives in the repository's tests package: let any `lit` command import it.
                "PYTHONPATH": os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p)}

    def session(self, role_arn: str, external_id: Optional[str] = None, region: Optional[str] = None,
                session_name: str = "lit-fakecloud-test") -> Any:
        """A boto3 Session on role_arn assumed through moto's STS (what it makes lands in the role's account)."""
        return assumed_session(self.endpoint, role_arn, external_id, region or self.region, session_name,
                               self.credentials())

    def admin_session(self) -> Any:
        """A boto3 Session of the fake cloud's admin user (allowed everything): for fixtures, never for lit."""
        return base_session(self.region, self.credentials(ADMIN))

    def create_role(self, role_arn: str = ROLE_ARN, external_id: Optional[str] = EXTERNAL_ID,
                    permissions: Optional[dict[str, Any]] = None) -> None:
        """Make (or remake) the customer's role as a customer would: with the permissions and trust policies
        `lit cluster policy` prints for it, or with `permissions` instead (a test's reduced policy)."""
        match = re.match(r"^arn:[\w-]+:iam::(\d{12}):role(/(?:[\w+=,.@-]+/)*)([\w+=,.@-]+)$", role_arn)
        if not match or match[1] != ACCOUNT:
            raise FakeCloudError(f"{role_arn}: the fake cloud's roles are in account {ACCOUNT}")
        printed, trust = lit_policies(external_id, role_arn)
        iam = self.client(self.admin_session(), "iam")
        name, path = match[3], match[2]
        try:
            iam.get_role(RoleName=name)
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
        except iam.exceptions.NoSuchEntityException:
            iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName=name, PolicyName="lit",
                            PolicyDocument=json.dumps(printed if permissions is None else permissions))

    def client(self, session: Any, service: str) -> Any:
        """A client of `session` bound to moto (explicit endpoint, no proxy)."""
        from botocore.config import Config

        return session.client(service, endpoint_url=self.endpoint, region_name=session.region_name or self.region,
                              config=Config(proxies={}))

    def moto_running(self) -> bool:
        return _same_process(self.moto_pid, self.moto_start)

    # ----- instances as hosts
    def instances_bed(self) -> Optional[TestBed]:
        """The test bed of the instances' hosts (as last recorded by the reconciler), or None."""
        if not (self.instances_dir / "state.json").exists():
            return None
        return TestBed.load(self.instances_dir)

    def set_boot(self, seconds: float) -> None:
        """From now on each instance that starts takes `seconds` to boot (its host comes up that much later)."""
        from .instances import BOOT_FILE

        self.instances_dir.mkdir(parents=True, exist_ok=True)
        (self.instances_dir / BOOT_FILE).write_text(f"{seconds}\n")
        self.boot = seconds

    def hosts_for_instances(self) -> dict[str, Host]:
        """instance id -> its host (address: the instance's private IP; name: the instance id), as recorded now.

        A host of a stopped instance is there too, powered off (host.powered_on False). The hosts are read from
        the reconciler's record: use them to look (exec, processes, pids, events, tcp_reachable); change their
        power through EC2 (stop/start/terminate), as the reconciler in moto's process owns them.
        """
        bed = self.instances_bed()
        return {h.name: h for h in bed.hosts} if bed else {}

    def wait_host(self, instance_id: str, timeout: float = 30.0) -> Host:
        """The instance's host once it is powered on and its sshd answers on port 22."""
        deadline = time.monotonic() + timeout
        while True:
            host = self.hosts_for_instances().get(instance_id)
            if host is not None and host.powered_on and host._read_banner(0.5).startswith("SSH-"):
                return host
            if time.monotonic() > deadline:
                raise FakeCloudError(f"no host answered SSH for instance {instance_id} within {timeout:.0f}s "
                                     f"(host: {host!r}); reconciler log:\n{self.reconciler_log_tail()}")
            time.sleep(0.05)

    def wait_no_host(self, instance_id: str, timeout: float = 30.0) -> None:
        """Wait until the instance has no host (terminated)."""
        deadline = time.monotonic() + timeout
        while instance_id in self.hosts_for_instances():
            if time.monotonic() > deadline:
                raise FakeCloudError(f"the host of {instance_id} is still there after {timeout:.0f}s; "
                                     f"reconciler log:\n{self.reconciler_log_tail()}")
            time.sleep(0.05)

    def reconciler_log_tail(self, chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.reconciler_log_path.read_text(errors="replace")[-chars:]
        return ""

    # ----- state
    def _to_state(self) -> dict[str, Any]:
        return {"address": self.address, "port": self.port, "region": self.region, "moto_pid": self.moto_pid,
                "moto_start": self.moto_start, "bed_dir": str(self.bed_dir) if self.bed_dir else None,
                "instances_dir": str(self.instances_dir),
                "owns_dir": self.owns_dir, "creator": list(self.creator), "created_at": self.created_at,
                "endpoint": self.endpoint}

    def _save_state(self) -> None:
        tmp = self.state_path.with_name(f".{STATE_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(self._to_state(), indent=2) + "\n")
        os.replace(tmp, self.state_path)

    @classmethod
    def load(cls, base_dir: str | os.PathLike[str] | None = None) -> FakeCloud:
        path = Path(base_dir) if base_dir is not None else default_dir()
        state = json.loads((path / STATE_FILE).read_text())
        cloud = cls(path, bool(state.get("owns_dir")))
        cloud.address, cloud.port = state.get("address", ""), int(state.get("port") or 0)
        cloud.region = state.get("region") or DEFAULT_REGION
        cloud.moto_pid, cloud.moto_start = state.get("moto_pid"), state.get("moto_start")
        cloud.bed_dir = Path(state["bed_dir"]) if state.get("bed_dir") else None
        cloud.instances_dir = Path(state.get("instances_dir") or path / "instances")
        cloud.creator = tuple(state.get("creator") or (None, None))  # type: ignore[assignment]
        cloud.created_at = state.get("created_at", 0.0)
        return cloud

    # ----- up
    @classmethod
    def up(cls, base_dir: str | os.PathLike[str] | None = None, *, region: str = DEFAULT_REGION,
           auto_down: bool = True, timeout: float = 60.0, boot: float = 0.0) -> FakeCloud:
        """Bring up a bridge (a one-host test bed) and moto on the bridge's address; return once moto answers.

        base_dir None: a new <tmp>/lit-fakecloud-XXXX (removed by down()). auto_down: take it down when this
        Python process exits, if nobody did. boot: seconds each instance takes to boot (its host comes up that
        long after moto runs it; default 0).
        """
        reason = requirement()
        if reason:
            raise FakeCloudError(reason)
        if base_dir is None:
            path, owns = Path(tempfile.mkdtemp(prefix="lit-fakecloud-")), True
        else:
            path = Path(base_dir).absolute()
            if (path / STATE_FILE).exists():
                raise FakeCloudError(f"a fake cloud is already recorded in {path}; take it down first "
                                     f"(python -m tests.fakecloud down --dir {path})")
            owns = not path.exists() or not any(path.iterdir())
            path.mkdir(parents=True, exist_ok=True)
        cloud = cls(path, owns)
        cloud.region = region
        cloud.boot = boot
        try:
            cloud._bring_up(timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                cloud.down()
            raise
        if auto_down:
            atexit.register(cloud._down_quietly)
        return cloud

    def _bring_up(self, timeout: float) -> None:
        t0 = time.monotonic()
        self.bed_dir = self.base_dir / "testbed"
        self._save_state()
        # The test bed needs one host at least; the host is also where a later test can reach moto from.
        self.bed = TestBed.up(1, self.bed_dir, auto_down=False, timeout=timeout)
        self.address = self.bed.bridge_address
        self.port = _free_port(self.address)
        self._save_state()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        # AWS managed policies (arn:aws:iam::aws:policy/...) exist, so lit:workPolicyArns can name them.
        # The images lit looks up (amis.py) besides moto's own, in every account and region.
        # IAM is enforced (authz.py): moto checks every request from the first (INITIAL_NO_AUTH_ACTION_COUNT).
        env.update(AWS_ACCESS_KEY_ID=DUMMY_KEY, AWS_SECRET_ACCESS_KEY=DUMMY_KEY, AWS_DEFAULT_REGION=self.region,
                   INITIAL_NO_AUTH_ACTION_COUNT="0",
                   MOTO_IAM_LOAD_MANAGED_POLICIES="true",
                   MOTO_AMIS_PATH=str(write_amis_file(self.amis_path, self.region)),
                   PYTHONPATH=os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p))
        self._save_state()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tests.fakecloud.motod", "--bed-dir", str(self.bed_dir),
                 "--instances-dir", str(self.instances_dir), "--log", str(self.reconciler_log_path),
                 "--guard", VPC_CIDR, "--boot", str(self.boot), "--credentials", str(self.credentials_path),
                 "--", "-H", self.address, "-p", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(self.base_dir),
                start_new_session=True)
        self.moto_pid, self.moto_start = self._proc.pid, _proc_start(self._proc.pid)
        self._save_state()
        deadline = t0 + timeout
        while not (_answers(self.endpoint) and (self.instances_dir / "state.json").exists()
                   and self.credentials_path.exists()):
            if self._proc.poll() is not None:
                raise FakeCloudError(f"moto exited ({self._proc.returncode}): {self._log_tail()}")
            if time.monotonic() > deadline:
                raise FakeCloudError(f"moto did not answer on {self.endpoint} within {timeout:.0f}s: "
                                     f"{self._log_tail()}")
            time.sleep(0.05)
        self.create_role()  # the customer's role, with what `lit cluster policy` prints

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""

    # ----- down
    def _down_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.down()

    def down(self, timeout: float = 10.0) -> None:
        """Stop moto (only the process recorded, checked by its start time), take the bed down, remove files."""
        if self._is_down:
            return
        problems = []
        if self.moto_pid and _same_process(self.moto_pid, self.moto_start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.moto_pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _same_process(self.moto_pid, self.moto_start):
                if self._proc is not None:
                    self._proc.poll()
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.moto_pid, signal.SIGKILL)
                    deadline = time.monotonic() + timeout
                time.sleep(0.05)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout)
        # The instances' hosts (their bed shares the bridge of the cloud's bed: down first).
        if (self.instances_dir / "state.json").exists():
            try:
                TestBed.load(self.instances_dir).down()
            except Exception as exc:
                problems.append(f"instances' hosts: {exc}")
        if self.bed is None and self.bed_dir is not None and (self.bed_dir / "state.json").exists():
            try:
                self.bed = TestBed.load(self.bed_dir)
            except (OSError, ValueError, KeyError) as exc:
                problems.append(f"cannot read the test bed in {self.bed_dir}: {exc}")
        if self.bed is not None:
            try:
                self.bed.down()
            except Exception as exc:
                problems.append(f"test bed: {exc}")
        if problems:
            raise FakeCloudError("fake cloud down left things behind: " + "; ".join(problems))
        self._is_down = True
        if self.owns_dir:
            import shutil

            shutil.rmtree(self.base_dir, ignore_errors=True)
        else:
            self.state_path.unlink(missing_ok=True)
            for path in (self.log_path, self.reconciler_log_path, self.amis_path, self.credentials_path):
                path.unlink(missing_ok=True)

    @classmethod
    def down_dir(cls, base_dir: str | os.PathLike[str] | None = None) -> bool:
        """Take down the fake cloud recorded in base_dir; False if none is recorded there."""
        path = Path(base_dir) if base_dir is not None else default_dir()
        if not (path / STATE_FILE).exists():
            return False
        cls.load(path).down()
        return True


def fakecloud_fixture(**kwargs: Any) -> Iterator[FakeCloud]:
    """Generator for a pytest fixture: yields a fake cloud that is up, takes it down after.

        @pytest.fixture(scope="module")
        def cloud():
            reason = requirement()
            if reason:
                pytest.skip(reason)
            yield from fakecloud_fixture()
    """
    cloud = FakeCloud.up(**kwargs)
    try:
        yield cloud
    finally:
        cloud.down()


fakecloud_fixture.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
