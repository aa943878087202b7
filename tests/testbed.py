"""A multi-host test bed of real parts: network namespaces with real sshd.

Each "host" is, on this one Linux machine:

* a network namespace (``ip netns``) joined by a veth pair to a bridge that
  the bed creates; the host gets a private IPv4 address on a /24 that is not
  used by anything on the machine (picked from 10.213.0.0/16 after reading
  ``ip -4 addr`` and ``ip -4 route``).  The bridge holds ``.1`` on the real
  machine's side so that code running here (``lit``) can reach the hosts.
  The namespaces have no default route: they reach only each other and
  the bridge address.
* a long-lived holder process (``unshare --pid --fork --mount --mount-proc
  --uts --ipc`` run inside ``ip netns exec``) whose child is PID 1 of the
  host's own PID namespace.  It mounts, in the host's private mount
  namespace: tmpfs over /run, /root, /tmp, /var/tmp, /home, /srv,
  /var/log and /dev/shm; a minimal /dev; read-only /sys, /proc/sys and
  /proc/sysrq-trigger; stand-ins over shutdown, poweroff, halt, reboot,
  telinit and systemctl (they only append a line to the host's events file);
  and, by default, the rest of the machine's filesystem read-only.  The
  host's own directory of the bed (``<bed dir>/hosts/<name>``) is bind
  mounted at /run/lit-testbed inside the host.
* a real OpenSSH ``sshd`` started with ``nsenter`` into those namespaces, so
  it can be stopped and started again while processes that earlier ssh
  sessions started keep running.  By default sshd (and so every ssh session)
  runs without CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_BOOT and a few more
  (``DROPPED_CAPS``): a session can neither unmount its private /root and /tmp
  nor add a route out of the bed's subnet.  ``Host.exec`` keeps all
  capabilities (it is for the tests' own inspection).

Hosts must use a Python outside /root (``Host.python``, Debian's
/usr/bin/python3): /root is a private, empty tmpfs on each host, so a pyenv
under /root/.pyenv is not visible there.

Requirements (root, Linux): ``bash tests/testbed_setup.sh`` installs
openssh-server, openssh-client, iproute2, procps, util-linux and python3
without starting a system sshd.

Addresses: the bridge (real machine's side) is ``<net>.1``, host ``hN``
(hostname ``hN``) is ``<net>.(10+N)``, sshd on port 22, user root, one
client key pair per bed (``bed.key_path``), strict known_hosts
(``bed.known_hosts_path``) and an ssh_config with a block per host name
(``bed.ssh_config_path``: ``ssh -F <dir>/ssh_config h1``).

Events: ``shutdown -h now`` & co. on a host append a line to
``<bed dir>/hosts/<name>/events``; read them with ``Host.events()``, wait with
``Host.wait_for_event()``, or get called back with ``Host.on_event()`` /
``Host.on_poweroff()`` (a fake cloud can then call ``Host.power_off()``).

Hosts one by one (a fake cloud's instances): ``TestBed.attach(bed, dir)`` is a bed with a state file of its
own on ``bed``'s bridge; ``add_host(name, address, prefix_len=, routes=, authorized_keys=, host_keys=,
host_class=)`` brings up one host (any address: ``add_bridge_route(cidr)`` routes a network outside
the bed's /24 to the bridge on this machine, refusing one the machine uses; the host gets on-link routes, never a
default route), ``remove_host(host)`` removes it. ``add_unreachable_route(cidr)`` keeps packets for a range whose
hosts are not up yet on this machine (removed at down).

By hand::

    python -m tests.testbed up 3 [--dir DIR]
    python -m tests.testbed status [--dir DIR]
    python -m tests.testbed down [--dir DIR]
    python -m tests.testbed down --all   # every bed whose creator is gone

DIR defaults to $LIT_TESTBED_DIR or /tmp/lit-testbed; ``TestBed.up()``
without a directory uses a new <tmp>/lit-testbed-XXXX.  From Python::

    with TestBed.up(3) as bed:
        bed.hosts[0].ssh("hostname")

Everything the bed makes is recorded in ``<dir>/state.json`` before it is
made, so ``down`` works from the state file even after a crash.  It kills
only the processes it recorded (checked against their start time) and
processes inside the bed's own network namespaces (which only the bed puts
there).  The hosts' mounts live in their private mount namespaces and go
away with their processes.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import ipaddress
import json
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = [
    "HOST_PYTHON",
    "Host",
    "TestBed",
    "TestBedError",
    "default_dir",
    "is_power_event",
    "require_root_and_sshd",
    "testbed_fixture",
]

HOST_PYTHON = "/usr/bin/python3"
SSHD = "/usr/sbin/sshd"
IN_HOST_DIR = "/run/lit-testbed"
EVENTS_FILE = "events"
STATE_FILE = "state.json"
SUBNET_POOL = ipaddress.ip_network("10.213.0.0/16")
STANDIN_NAMES = ("shutdown", "poweroff", "halt", "reboot", "telinit", "systemctl")
STANDIN_DIRS = ("/sbin", "/usr/sbin", "/bin", "/usr/bin")
PRIVATE_TMPFS: tuple[tuple[str, str], ...] = (
    ("/root", "0700"),
    ("/tmp", "1777"),
    ("/var/tmp", "1777"),
    ("/home", "0755"),
    ("/srv", "0755"),
    ("/var/log", "0755"),
)
HOST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "USER": "root",
    "LOGNAME": "root",
}
_NS_FLAGS = ("--pid", "--mount", "--net", "--uts", "--ipc")
# Capabilities taken out of the bounding set of sshd (so of everything run
# through ssh): no mounts or unmounts (the private /root, /tmp and the
# read-only root stay as they are), no route or link changes (no way out of
# the bed's subnet), no reboot, clock, modules, raw disks or device nodes.
DROPPED_CAPS: dict[str, int] = {
    "linux_immutable": 9,
    "net_admin": 12,
    "sys_module": 16,
    "sys_rawio": 17,
    "sys_pacct": 20,
    "sys_admin": 21,
    "sys_boot": 22,
    "sys_time": 25,
    "mknod": 27,
    "audit_control": 30,
    "mac_override": 32,
    "mac_admin": 33,
    "syslog": 34,
    "perfmon": 38,
    "bpf": 39,
    "checkpoint_restore": 40,
}
# Drops capabilities from the bounding set, then execs argv[1:] (run with
# the hosts' python; needs no setpriv).
_CAPDROP_CODE = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "last = int(open('/proc/sys/kernel/cap_last_cap').read())\n"
    "for n in map(int, sys.argv[1].split(',')):\n"
    "    if n <= last and libc.prctl(24, n, 0, 0, 0) != 0:\n"  # PR_CAPBSET_DROP
    "        sys.exit('lit-testbed: cannot drop capability %d: %s' % (n, os.strerror(ctypes.get_errno())))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class TestBedError(RuntimeError):
    """The test bed could not be brought up or taken down."""


def default_dir() -> Path:
    """The bed directory the command line uses: $LIT_TESTBED_DIR or /tmp/lit-testbed."""
    return Path(os.environ.get("LIT_TESTBED_DIR") or "/tmp/lit-testbed")


# --------------------------------------------------------------------------
# The program that runs as PID 1 of each host.  It is run with Debian's
# python3 (-I -S) inside `ip netns exec NS unshare --pid --fork --mount ...`,
# sets up the host's private mounts, then reaps orphans until killed.
# --------------------------------------------------------------------------
_INIT_CODE = r"""
# lit test bed: PID 1 of one fake host (written by tests/testbed.py).
import ctypes, json, os, signal, socket, sys, traceback

with open(sys.argv[1]) as _f:
    cfg = json.load(_f)
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                       ctypes.c_ulong, ctypes.c_char_p)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18

def b(s):
    return None if s is None else s.encode()

def mount(src, tgt, fstype=None, flags=0, data=None):
    if libc.mount(b(src), b(tgt), b(fstype), flags, b(data)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "mount %r on %r (%r): %s" % (src, tgt, fstype, os.strerror(e)))

def tmpfs(tgt, mode):
    mount("lit-testbed", tgt, "tmpfs", MS_NOSUID | MS_NODEV, "mode=" + mode)

def overlay(path, lines, mode):
    # Show `lines` at `path` in this host only: a file under /run/lit-testbed-bin bound over it.
    fixed = "/run/lit-testbed-bin/" + os.path.basename(path)
    with open(fixed, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(fixed, mode)
    mount(fixed, path, None, MS_BIND)

def bind_ro(path):
    mount(path, path, None, MS_BIND | MS_REC)
    mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)

def setup():
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    hostdir_fd = os.open(cfg["hostdir"], os.O_PATH | os.O_DIRECTORY)
    # /run: private to the host.  The host's directory of the bed is bound
    # at /run/lit-testbed (sshd config, keys, logs, the events file).
    tmpfs("/run", "0755")
    for d in ("/run/lit-testbed", "/run/sshd", "/run/lock", "/run/lit-testbed-bin"):
        os.makedirs(d, mode=0o755, exist_ok=True)
    mount("/proc/self/fd/%d" % hostdir_fd, "/run/lit-testbed", None, MS_BIND)
    os.close(hostdir_fd)
    # Stand-ins for the commands that would stop the machine.
    standin = "/run/lit-testbed-bin/standin"
    with open(standin, "w") as f:
        f.write(cfg["standin"])
    os.chmod(standin, 0o755)
    done = set()
    for d in cfg["standin_dirs"]:
        for n in cfg["standin_names"]:
            p = os.path.join(d, n)
            if not os.path.lexists(p):
                continue
            real = os.path.realpath(p)
            if real in done or not os.path.isfile(real):
                continue
            mount(standin, real, None, MS_BIND)
            done.add(real)
    # root's account must not be locked for sshd (UsePAM no).
    try:
        with open("/etc/shadow") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    if any(l.startswith("root:!") for l in lines):
        unlocked = []
        for l in lines:
            if l.startswith("root:!"):
                parts = l.split(":")
                parts[1] = "*"
                l = ":".join(parts)
            unlocked.append(l)
        overlay("/etc/shadow", unlocked, 0o640)
    # Private writable directories.
    for d, mode in cfg["tmpfs"]:
        if os.path.isdir(d) and not os.path.islink(d):
            tmpfs(d, mode)
    # Login records sshd writes (so it does not complain on each login).
    for f in ("/var/log/lastlog", "/var/log/wtmp", "/var/log/btmp", "/run/utmp"):
        if os.path.isdir(os.path.dirname(f)) and not os.path.exists(f):
            with open(f, "a"):
                pass
    # A minimal /dev: no disks, no kmsg, its own ptys.
    try:
        stage = "/run/lit-testbed-dev"
        os.makedirs(stage)
        tmpfs(stage, "0755")
        for n in ("null", "zero", "full", "random", "urandom", "tty"):
            if os.path.exists("/dev/" + n):
                open(os.path.join(stage, n), "w").close()
                mount("/dev/" + n, os.path.join(stage, n), None, MS_BIND)
        os.makedirs(stage + "/pts")
        try:
            mount("devpts", stage + "/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                  "newinstance,ptmxmode=0666,mode=0620,gid=5")
            os.symlink("pts/ptmx", stage + "/ptmx")
        except OSError:
            mount("/dev/pts", stage + "/pts", None, MS_BIND)
            open(stage + "/ptmx", "w").close()
            mount("/dev/ptmx", stage + "/ptmx", None, MS_BIND)
        os.makedirs(stage + "/shm")
        tmpfs(stage + "/shm", "1777")
        for n, t in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                     ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            os.symlink(t, os.path.join(stage, n))
        mount(stage, "/dev", None, MS_MOVE)
    except OSError:
        traceback.print_exc()
        print("lit-testbed init: keeping the machine's /dev", file=sys.stderr)
        if os.path.isdir("/dev/shm"):
            tmpfs("/dev/shm", "1777")
    # Kernel knobs of the real machine stay out of reach.
    for p in ("/proc/sys", "/proc/sysrq-trigger", "/sys"):
        if os.path.exists(p):
            try:
                bind_ro(p)
            except OSError:
                traceback.print_exc()
    if cfg["readonly_root"]:
        mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    socket.sethostname(cfg["hostname"])

def main():
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(s, lambda *a: None)
    signal.pthread_sigmask(signal.SIG_BLOCK,
                           {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    ready = os.path.join(cfg["hostdir"], "ready")
    try:
        setup()
    except BaseException as e:
        traceback.print_exc()
        try:
            with open(ready, "w") as f:
                f.write("error: %s\n" % e)
        except OSError:
            pass
        sys.exit(1)
    with open("/run/lit-testbed/ready", "w") as f:
        f.write("ok\n")
    sys.stdout.flush()
    while True:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        info = signal.sigtimedwait({signal.SIGCHLD, signal.SIGTERM, signal.SIGINT,
                                    signal.SIGHUP}, 5.0)
        if info is not None and info.si_signo != signal.SIGCHLD:
            sys.exit(0)

main()
"""

_STANDIN = """#!/bin/sh
# lit test bed stand-in: records the command, stops nothing.
n=${0##*/}
printf '%s\\t%s\\n' "$(date +%s.%N 2>/dev/null)" "$n${*:+ $*}" >> /run/lit-testbed/events
exit 0
"""


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------
def _run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and p.returncode != 0:
        raise TestBedError(f"{shlex.join(argv)} failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    return p


def _proc_start(pid: int) -> int | None:
    """Start time of pid (clock ticks since boot), or None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _same_process(pid: int | None, start: int | None) -> bool:
    return bool(pid) and start is not None and _proc_start(pid) == start  # type: ignore[arg-type]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(x) for x in text.split()]
    except OSError:
        pass
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                kids.append(int(d.name))
    return kids


def _wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TestBedError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _random_mac() -> str:
    b = bytearray(secrets.token_bytes(6))
    b[0] = (b[0] & 0xFC) | 0x02  # locally administered, unicast
    return ":".join(f"{x:02x}" for x in b)


def _disable_ipv6(ifname: str) -> None:
    p = Path(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6")
    with contextlib.suppress(OSError):
        p.write_text("1\n")


def _link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def _netns_list() -> set[str]:
    p = _run(["ip", "netns", "list"], check=False)
    return {line.split()[0] for line in p.stdout.splitlines() if line.strip()}


def _used_networks(guards: bool = True) -> list[ipaddress.IPv4Network]:
    """The networks of this machine's addresses and routes (guards=False: leaving out `unreachable` routes, which
    only keep packets in; fake clouds put them over the range their instances get)."""
    nets: list[ipaddress.IPv4Network] = []
    for link in json.loads(_run(["ip", "-4", "-j", "addr"]).stdout or "[]"):
        for ai in link.get("addr_info", []):
            if ai.get("family") == "inet":
                nets.append(ipaddress.ip_interface(f"{ai['local']}/{ai['prefixlen']}").network)
    for r in json.loads(_run(["ip", "-4", "-j", "route", "show", "table", "all"]).stdout or "[]"):
        dst = r.get("dst", "")
        if not dst or dst == "default" or (not guards and r.get("type") == "unreachable"):
            continue
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(dst, strict=False)
            if isinstance(net, ipaddress.IPv4Network):
                nets.append(net)
    return nets


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (made if missing) for the block: between processes."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _global_lock() -> contextlib.AbstractContextManager[None]:
    """Serialises subnet choice between beds (several pytest processes)."""
    lock_dir = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())
    return file_lock(lock_dir / "lit-testbed.lock")


def _new_prefix() -> str:
    """A name prefix no bed's namespaces or links use."""
    existing_ns = _netns_list()
    while True:
        prefix = "littb" + secrets.token_hex(2)
        if not any(n.startswith(prefix) for n in existing_ns) and not _link_exists(f"{prefix}br"):
            return prefix


def _bed_dir(base_dir: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """(directory, whether the bed owns it) for a new bed; refuses a directory that records a bed."""
    if base_dir is None:
        path = Path(tempfile.mkdtemp(prefix="lit-testbed-"))
        os.chmod(path, 0o755)
        return path, True
    path = Path(base_dir).absolute()
    if (path / STATE_FILE).exists():
        raise TestBedError(
            f"a test bed is already recorded in {path}; take it down first (python -m tests.testbed down --dir {path})"
        )
    owns = not path.exists() or not any(path.iterdir())
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)
    return path, owns


def is_power_event(cmd: str) -> bool:
    """Whether a recorded command would stop or restart a real machine."""
    parts = cmd.split()
    if not parts:
        return False
    name, args = parts[0], parts[1:]
    if name == "shutdown":
        return not any(a in ("-k", "-c", "--help") for a in args)
    if name in ("poweroff", "halt", "reboot"):
        return "--help" not in args
    if name == "systemctl":
        return any(a in ("poweroff", "halt", "reboot", "kexec", "emergency", "rescue") for a in args)
    if name == "telinit":
        return any(a in ("0", "6", "1", "s", "S") for a in args)
    return False


def require_root_and_sshd() -> str | None:
    """Why the test bed cannot run here, or None if it can.

    The caller decides what to do with the reason (skip locally, fail in CI).
    """
    if not sys.platform.startswith("linux"):
        return "the test bed needs Linux network, PID and mount namespaces"
    if os.geteuid() != 0:
        return "the test bed needs root (network namespaces, bridges, mounts)"
    for tool in ("ip", "unshare", "nsenter", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} not found (run: bash tests/testbed_setup.sh)"
    for path in (SSHD, HOST_PYTHON):
        if not os.access(path, os.X_OK):
            return f"{path} not found (run: bash tests/testbed_setup.sh)"
    try:
        p = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount", "--net", "--uts", "--ipc", "true"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot create namespaces: {e}"
    if p.returncode != 0:
        return f"cannot create namespaces: {p.stderr.strip()}"
    return None


# --------------------------------------------------------------------------
# Host
# --------------------------------------------------------------------------
class Host:
    """One fake host of a TestBed."""

    port = 22
    user = "root"
    python = HOST_PYTHON

    def __init__(
        self,
        bed: TestBed,
        index: int,
        name: str,
        netns: str,
        address: str,
        mac: str,
        veth: str,
        peer: str,
        directory: Path,
    ) -> None:
        self.bed = bed
        self.index = index
        self.name = name
        self.netns = netns
        self.address = address
        self.mac = mac
        self.veth = veth  # host end (renamed to eth0 inside the namespace)
        self.peer = peer  # bridge end, on the real machine
        self.dir = directory
        self.host_key_line = ""
        self.holder_pid: int | None = None
        self.holder_start: int | None = None
        self.init_pid: int | None = None
        self.init_start: int | None = None
        self.sshd_pid: int | None = None  # nsenter on the real machine's side
        self.sshd_start: int | None = None
        self.link_is_up = True
        self.powered_on = True
        # Set before bring-up (add_host): the host's hostname (default: name), the prefix length of its
        # address, extra on-link routes (CIDRs reached over eth0, never a default route), and host keys given
        # by the caller instead of generated.
        self.hostname = name
        self.prefix_len = 24
        self.routes: list[str] = []
        self.host_key_types: list[str] = ["ed25519"]
        self._holder: subprocess.Popen[bytes] | None = None
        self._sshd: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.user}@{self.address}>"

    # ----- paths and keys
    @property
    def events_path(self) -> Path:
        return self.dir / EVENTS_FILE

    @property
    def sshd_log_path(self) -> Path:
        return self.dir / "sshd.log"

    @property
    def host_key_path(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def target(self) -> str:
        """user@address, as for ssh."""
        return f"{self.user}@{self.address}"

    # ----- state
    def _to_state(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "netns": self.netns,
            "address": self.address,
            "mac": self.mac,
            "veth": self.veth,
            "peer": self.peer,
            "dir": str(self.dir),
            "host_key_line": self.host_key_line,
            "holder_pid": self.holder_pid,
            "holder_start": self.holder_start,
            "init_pid": self.init_pid,
            "init_start": self.init_start,
            "sshd_pid": self.sshd_pid,
            "sshd_start": self.sshd_start,
            "link_is_up": self.link_is_up,
            "powered_on": self.powered_on,
            "hostname": self.hostname,
            "prefix_len": self.prefix_len,
            "routes": self.routes,
            "host_key_types": self.host_key_types,
        }

    @classmethod
    def _from_state(cls, bed: TestBed, d: dict[str, Any]) -> Host:
        h = cls(
            bed,
            d["index"],
            d["name"],
            d["netns"],
            d["address"],
            d["mac"],
            d["veth"],
            d["peer"],
            Path(d["dir"]),
        )
        for k in (
            "host_key_line",
            "holder_pid",
            "holder_start",
            "init_pid",
            "init_start",
            "sshd_pid",
            "sshd_start",
            "link_is_up",
            "powered_on",
            "hostname",
            "prefix_len",
            "routes",
            "host_key_types",
        ):
            setattr(h, k, d.get(k, getattr(h, k)))
        return h

    # ----- bring-up pieces (called by TestBed)
    def _write_config(self, client_pubkey: str, host_keys: dict[str, tuple[str, str]] | None = None) -> None:
        """sshd_config, authorized_keys (client_pubkey: one or more lines) and host keys.

        host_keys: key type ("ed25519", "rsa", "ecdsa") -> (private key text, public key line), used as
        given; an ed25519 host key is generated if none is given.
        """
        host_keys = dict(host_keys or {})
        self.host_key_types = ["ed25519", *sorted(t for t in host_keys if t != "ed25519")]
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        (self.dir / "authorized_keys").write_text(client_pubkey.strip() + "\n")
        self.events_path.touch()
        (self.dir / "sshd_config").write_text(
            "\n".join(
                [
                    "# lit test bed: sshd of one fake host",
                    "Port 22",
                    "AddressFamily inet",
                    "ListenAddress 0.0.0.0",
                    *(f"HostKey {IN_HOST_DIR}/ssh_host_{t}_key" for t in self.host_key_types),
                    f"PidFile {IN_HOST_DIR}/sshd.pid",
                    f"AuthorizedKeysFile {IN_HOST_DIR}/authorized_keys",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "UseDNS no",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "MaxStartups 200:30:400",
                    "MaxSessions 100",
                    "LoginGraceTime 30",
                    "LogLevel VERBOSE",
                    "AcceptEnv LANG LC_* LIT_*",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        if "ed25519" in host_keys:
            self._set_host_key("ed25519", *host_keys["ed25519"])
        else:
            self._new_host_key()
        for t, (private, public) in host_keys.items():
            if t != "ed25519":
                self._set_host_key(t, private, public)

    def _set_host_key(self, key_type: str, private: str, public: str) -> None:
        path = self.dir / f"ssh_host_{key_type}_key"
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(private.strip() + "\n")
        pub = public.split()
        if len(pub) < 2:
            raise TestBedError(f"{self.name}: {key_type} host key: bad public key {public!r}")
        path.with_name(path.name + ".pub").write_text(f"{pub[0]} {pub[1]}\n")
        if key_type == "ed25519":
            self.host_key_line = f"{self.address} {pub[0]} {pub[1]}"

    def _new_host_key(self) -> None:
        for p in (self.host_key_path, self.host_key_path.with_suffix(".pub")):
            p.unlink(missing_ok=True)
        _run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"{self.netns}",
                "-f",
                str(self.host_key_path),
            ]
        )
        pub = self.host_key_path.with_suffix(".pub").read_text().split()
        self.host_key_line = f"{self.address} {pub[0]} {pub[1]}"

    # The holder's init program, its file name in the bed's directory, and whether unshare mounts /proc for it
    # (a host of another kind, e.g. the fake cloud's instances of tests/fakecloud/machine.py, has its own).
    init_code = _INIT_CODE
    init_file = "testbed-init.py"
    mount_proc = True

    def _init_config(self, readonly_root: bool) -> dict[str, Any]:
        """What the init program reads (init.json in the host's directory)."""
        return {
            "hostdir": str(self.dir),
            "hostname": self.hostname,
            "standin": _STANDIN,
            "standin_names": list(STANDIN_NAMES),
            "standin_dirs": list(STANDIN_DIRS),
            "tmpfs": [list(t) for t in PRIVATE_TMPFS],
            "readonly_root": readonly_root,
        }

    def _start_holder(self, readonly_root: bool, timeout: float = 30.0) -> None:
        cfg = self._init_config(readonly_root)
        (self.dir / "ready").unlink(missing_ok=True)
        cfg_path = self.dir / "init.json"
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
        init_path = self.bed.base_dir / self.init_file
        if not init_path.exists():
            tmp = init_path.with_name(f".{self.init_file}.{threading.get_ident()}")
            tmp.write_text(self.init_code)
            os.replace(tmp, init_path)
        with open(self.dir / "init.log", "ab") as log:
            self._holder = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.netns,
                    "unshare",
                    "--pid",
                    "--fork",
                    "--kill-child=SIGKILL",
                    "--mount",
                    *(["--mount-proc"] if self.mount_proc else []),
                    "--propagation",
                    "private",
                    "--uts",
                    "--ipc",
                    HOST_PYTHON,
                    "-I",
                    "-S",
                    str(init_path),
                    str(cfg_path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd="/",
                env=HOST_ENV,
                start_new_session=True,
            )
        self.holder_pid = self._holder.pid
        self.holder_start = _proc_start(self._holder.pid)
        self.bed._save_state()

        def init_found() -> int | None:
            if self._holder is not None and self._holder.poll() is not None:
                raise TestBedError(f"{self.name}: holder exited: {self._init_log_tail()}")
            kids = _children(self._holder.pid) if self._holder else []
            return kids[0] if kids else None

        self.init_pid = _wait_for(init_found, timeout, f"{self.name}: init process")
        self.init_start = _proc_start(self.init_pid)
        self.bed._save_state()

        def ready() -> bool:
            p = self.dir / "ready"
            if p.exists():
                text = p.read_text()
                if text.startswith("ok"):
                    return True
                if text.startswith("error"):
                    raise TestBedError(f"{self.name}: init failed: {self._init_log_tail()}")
            if self._holder is not None and self._holder.poll() is not None:
                raise TestBedError(f"{self.name}: holder exited: {self._init_log_tail()}")
            return False

        _wait_for(ready, timeout, f"{self.name}: host mounts")

    def _init_log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "init.log").read_text()[-2000:]
        return ""

    def _nsenter(self) -> list[str]:
        if not _same_process(self.init_pid, self.init_start):
            raise TestBedError(f"{self.name}: host is not running")
        return ["nsenter", f"--target={self.init_pid}", *_NS_FLAGS, "--root", "--wd"]

    # ----- sshd
    def start_sshd(self, timeout: float = 15.0) -> None:
        """Start sshd in the host's namespaces and wait until it answers."""
        with self._lock:
            if self.sshd_running():
                return
            with open(self.sshd_log_path, "ab") as log:
                self._sshd = subprocess.Popen(
                    [
                        *self._nsenter(),
                        *self.bed._cap_drop_argv(),
                        SSHD,
                        "-D",
                        "-e",
                        "-f",
                        f"{IN_HOST_DIR}/sshd_config",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=HOST_ENV,
                    start_new_session=True,
                )
            self.sshd_pid = self._sshd.pid
            self.sshd_start = _proc_start(self._sshd.pid)
            self.bed._save_state()

            def banner() -> bool:
                if self._sshd is not None and self._sshd.poll() is not None:
                    raise TestBedError(f"{self.name}: sshd exited: {self._sshd_log_tail()}")
                return self._read_banner(0.5).startswith("SSH-")

            _wait_for(banner, timeout, f"{self.name}: sshd on {self.address}:22", 0.02)

    def stop_sshd(self, timeout: float = 10.0) -> None:
        """Stop the sshd listener; sessions and what they started keep running."""
        with self._lock:
            if not _same_process(self.sshd_pid, self.sshd_start):
                self.sshd_pid = self.sshd_start = None
                self._sshd = None
                return
            assert self.sshd_pid is not None
            for kid in _children(self.sshd_pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(kid, signal.SIGTERM)
            try:
                _wait_for(
                    lambda: (
                        not _same_process(self.sshd_pid, self.sshd_start)
                        or (self._sshd is not None and self._sshd.poll() is not None)
                    ),
                    timeout,
                    f"{self.name}: sshd to stop",
                )
            except TestBedError:
                for kid in _children(self.sshd_pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(kid, signal.SIGKILL)
            if self._sshd is not None:
                self._sshd.wait(timeout)
            self._sshd = None
            self.sshd_pid = self.sshd_start = None
            self.bed._save_state()

    def restart_sshd(self) -> None:
        self.stop_sshd()
        self.start_sshd()

    def sshd_running(self) -> bool:
        return _same_process(self.sshd_pid, self.sshd_start) and bool(_children(self.sshd_pid or 0))

    def _read_banner(self, timeout: float) -> str:
        try:
            with socket.create_connection((self.address, self.port), timeout=timeout) as s:
                s.settimeout(timeout)
                return s.recv(64).decode("ascii", "replace")
        except OSError:
            return ""

    def _sshd_log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.sshd_log_path.read_text()[-2000:]
        return ""

    def rotate_host_key(self) -> str:
        """Give the host a new host key and restart sshd.

        The bed's known_hosts is NOT updated, so strict ssh now fails with a
        host key verification error; call ``bed.refresh_known_hosts()`` to
        trust the new key.  Returns the new host key line.
        """
        with self._lock:
            self._new_host_key()
            self.restart_sshd()
            self.bed._save_state()
            return self.host_key_line

    # ----- network
    def link_down(self) -> None:
        """Silently cut the host off: its bridge port goes down, nothing answers."""
        _run(["ip", "link", "set", self.peer, "down"])
        self.link_is_up = False
        self.bed._save_state()

    def link_up(self) -> None:
        _run(["ip", "link", "set", self.peer, "up"])
        self.link_is_up = True
        self.bed._save_state()

    def tcp_reachable(self, port: int = 22, timeout: float = 1.0) -> bool:
        try:
            with socket.create_connection((self.address, port), timeout=timeout):
                return True
        except OSError:
            return False

    # ----- commands
    def ssh_argv(self, *extra_opts: str) -> list[str]:
        """The ssh command line (without the remote command) for this host."""
        return [*self.bed.ssh_base_argv(), *extra_opts, "-p", str(self.port), self.target]

    def ssh(
        self,
        cmd: str | Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 30.0,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run cmd on the host through the real ssh client, strict host key checking."""
        remote = cmd if isinstance(cmd, str) else shlex.join(cmd)
        p = subprocess.run(
            [*self.ssh_argv(), remote],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and p.returncode != 0:
            raise subprocess.CalledProcessError(p.returncode, p.args, p.stdout, p.stderr)
        return p

    def exec(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 30.0,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv directly inside the host's namespaces (no ssh), for inspection."""
        p = subprocess.run(
            [*self._nsenter(), "--", *argv],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=HOST_ENV,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and p.returncode != 0:
            raise subprocess.CalledProcessError(p.returncode, p.args, p.stdout, p.stderr)
        return p

    def pid_namespace(self) -> str:
        """The host's PID namespace, as readlink /proc/PID/ns/pid shows it."""
        return os.readlink(f"/proc/{self.init_pid}/ns/pid")

    def pids(self) -> list[int]:
        """PIDs (as the real machine numbers them) of every process in the host."""
        try:
            ns = self.pid_namespace()
        except OSError:
            return []
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(d / "ns" / "pid") == ns and _proc_start(int(d.name)):
                        out.append(int(d.name))
        return sorted(out)

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process in the host."""
        out = []
        for pid in self.pids():
            with contextlib.suppress(OSError):
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                out.append((pid, " ".join(x.decode(errors="replace") for x in raw.split(b"\0") if x)))
        return out

    def kill_all(self, sig: int = signal.SIGKILL, include_sshd: bool = False) -> list[int]:
        """Signal every process in the host but its init (and sshd listener)."""
        keep = {self.init_pid}
        if not include_sshd and self.sshd_pid:
            keep.update(_children(self.sshd_pid))
        killed = []
        for pid in self.pids():
            if pid in keep:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                killed.append(pid)
        return killed

    # ----- events (what the shutdown/poweroff/... stand-ins recorded)
    def events(self) -> list[str]:
        """Commands the stand-ins recorded, e.g. ["shutdown -h now", "systemctl poweroff"]."""
        return [e[1] for e in self.events_with_time()]

    def events_with_time(self) -> list[tuple[float, str]]:
        try:
            text = self.events_path.read_text()
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            t, _, cmd = line.partition("\t")
            try:
                ts = float(t)
            except ValueError:
                ts = 0.0
            out.append((ts, cmd))
        return out

    def wait_for_event(self, contains: str = "", timeout: float = 10.0) -> str | None:
        """First recorded command containing `contains`, waiting up to timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events():
                if contains in e:
                    return e
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def on_event(self, callback: Callable[[Host, str], None]) -> Callable[[], None]:
        """Call callback(host, command) for each new stand-in event; returns a canceller.

        A thread of the bed polls the events file every 0.1 s.
        """
        return self.bed._watch(self, callback)

    def on_poweroff(self, callback: Callable[[Host, str], None]) -> Callable[[], None]:
        """Like on_event, for commands that would stop or restart the machine only.

        E.g. a fake cloud marks its instance stopped (and calls
        ``host.power_off()``) when the host runs ``shutdown -h now``.
        """

        def filtered(host: Host, cmd: str) -> None:
            if is_power_event(cmd):
                callback(host, cmd)

        return self.on_event(filtered)

    def power_off(self, timeout: float = 10.0) -> None:
        """Simulate the machine stopping: sshd and every process but init die.

        The host keeps its address (and /tmp, /root contents); power_on()
        starts sshd again.
        """
        with self._lock:
            self.stop_sshd()
            deadline = time.monotonic() + timeout
            while True:
                left = [p for p in self.pids() if p != self.init_pid]
                if not left:
                    break
                if time.monotonic() > deadline:
                    raise TestBedError(f"{self.name}: processes {left} survived power_off")
                self.kill_all(include_sshd=True)
                time.sleep(0.02)
            self.powered_on = False

    def power_on(self) -> None:
        """Start sshd again after power_off()."""
        with self._lock:
            self.start_sshd()
            self.powered_on = True


# --------------------------------------------------------------------------
# TestBed
# --------------------------------------------------------------------------
class TestBed:
    """A bridge, N hosts, a client key pair and a known_hosts file."""

    __test__ = False  # not a pytest test class

    def __init__(self, base_dir: Path, prefix: str, owns_dir: bool) -> None:
        self.base_dir = base_dir
        self.prefix = prefix
        self.owns_dir = owns_dir
        self.bridge = f"{prefix}br"
        self.bridge_mac = _random_mac()
        self.subnet = ""
        self.bridge_address = ""
        self.hosts: list[Host] = []
        self.readonly_root = True
        self.drop_caps = True
        self.key_path = base_dir / "id_ed25519"
        self.known_hosts_path = base_dir / "known_hosts"
        self.created_at = time.time()
        self.creator: tuple[int | None, int | None] = (os.getpid(), _proc_start(os.getpid()))
        # A bed attached to another bed's bridge (TestBed.attach) neither makes nor removes the bridge.
        self.owns_bridge = True
        self.bridge_routes: list[str] = []  # CIDRs routed to the bridge by add_bridge_route()
        self.unreachable_routes: list[tuple[str, int]] = []  # (CIDR, metric) of add_unreachable_route()
        self.next_index = 1
        self._state_lock = threading.RLock()
        self._watchers: list[tuple[Host, Callable[[Host, str], None], list[int]]] = []
        self._watch_thread: threading.Thread | None = None
        self._watch_stop = threading.Event()
        self._is_down = False

    def __repr__(self) -> str:
        return f"<TestBed {self.prefix} {self.subnet} {len(self.hosts)} hosts in {self.base_dir}>"

    def __enter__(self) -> TestBed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    @property
    def state_path(self) -> Path:
        return self.base_dir / STATE_FILE

    @property
    def public_key_path(self) -> Path:
        return self.key_path.with_suffix(".pub")

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    # ----- bring up
    @classmethod
    def up(
        cls,
        n_hosts: int,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        readonly_root: bool = True,
        drop_caps: bool = True,
        auto_down: bool = True,
        timeout: float = 60.0,
    ) -> TestBed:
        """Bring up n_hosts hosts and return the bed once each accepts ssh.

        base_dir None: a new temporary directory (removed by down()).  An
        existing base_dir must not hold a bed that is up.  auto_down: take the
        bed down when this Python process exits, if nobody did.
        """
        if not 1 <= n_hosts <= 200:
            raise ValueError("n_hosts must be between 1 and 200")
        reason = require_root_and_sshd()
        if reason:
            raise TestBedError(reason)
        if base_dir is None:
            path = Path(tempfile.mkdtemp(prefix="lit-testbed-"))
            owns = True
        else:
            path = Path(base_dir).absolute()
            if (path / STATE_FILE).exists():
                raise TestBedError(
                    f"a test bed is already recorded in {path}; take it down first "
                    f"(python -m tests.testbed down --dir {path})"
                )
            owns = not path.exists() or not any(path.iterdir())
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o755)
        bed = cls(path, _new_prefix(), owns)
        bed.readonly_root = readonly_root
        bed.drop_caps = drop_caps
        try:
            bed._bring_up(n_hosts, timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                bed.down()
            raise
        if auto_down:
            atexit.register(bed._down_quietly)
        return bed

    def _make_client_key(self) -> None:
        """The bed's client key (key_path): what every host accepts unless told otherwise."""
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"lit-testbed-{self.prefix}", "-f",
              str(self.key_path)])

    def _bring_up(self, n_hosts: int, timeout: float) -> None:
        t0 = time.monotonic()
        self._save_state()
        self._make_client_key()
        client_pub = self.public_key_path.read_text()
        self._make_bridge()
        for i in range(1, n_hosts + 1):
            addr = str(ipaddress.ip_network(self.subnet).network_address + 10 + i)
            name = f"h{i}"
            self.hosts.append(
                Host(
                    self,
                    i,
                    name,
                    f"{self.prefix}-{name}",
                    addr,
                    _random_mac(),
                    f"{self.prefix}v{i}",
                    f"{self.prefix}p{i}",
                    self.base_dir / "hosts" / name,
                )
            )
        self._save_state()
        for h in self.hosts:
            self._make_host_network(h)
        self._set_neighbours()

        def start(h: Host) -> None:
            h._write_config(client_pub)
            h._start_holder(self.readonly_root, timeout=max(1.0, timeout - (time.monotonic() - t0)))
            h.start_sshd(timeout=max(1.0, timeout - (time.monotonic() - t0)))

        with ThreadPoolExecutor(max_workers=min(16, n_hosts)) as pool:
            list(pool.map(start, self.hosts))
        self.refresh_known_hosts()
        self.ssh_config_path.write_text(self.ssh_config_text())

        def check(h: Host) -> None:
            deadline = t0 + timeout
            while True:
                p = h.ssh("true", timeout=10)
                if p.returncode == 0:
                    return
                if time.monotonic() > deadline:
                    raise TestBedError(
                        f"{h.name}: ssh true failed ({p.returncode}): {p.stderr.strip()}\n"
                        f"sshd log: {h._sshd_log_tail()}"
                    )
                time.sleep(0.1)

        with ThreadPoolExecutor(max_workers=min(16, n_hosts)) as pool:
            list(pool.map(check, self.hosts))
        self._save_state()

    def _make_bridge(self) -> None:
        with _global_lock():
            used = _used_networks()
            candidates = list(SUBNET_POOL.subnets(new_prefix=24))
            random.shuffle(candidates)
            for net in candidates:
                if net.network_address.packed[2] in (0, 255):
                    continue
                if not any(net.overlaps(u) for u in used):
                    break
            else:
                raise TestBedError(f"no free /24 left in {SUBNET_POOL}")
            self.subnet = str(net)
            self.bridge_address = str(net.network_address + 1)
            self._save_state()
            _run(["ip", "link", "add", self.bridge, "address", self.bridge_mac, "type", "bridge"])
            _disable_ipv6(self.bridge)
            _run(["ip", "addr", "add", f"{self.bridge_address}/24", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])

    def _make_host_network(self, h: Host) -> None:
        _run(["ip", "netns", "add", h.netns])
        _run(
            [
                "ip",
                "link",
                "add",
                h.veth,
                "address",
                h.mac,
                "type",
                "veth",
                "peer",
                "name",
                h.peer,
            ]
        )
        _disable_ipv6(h.peer)
        _disable_ipv6(h.veth)
        _run(["ip", "link", "set", h.veth, "netns", h.netns])
        _run(["ip", "link", "set", h.peer, "master", self.bridge])
        _run(["ip", "link", "set", h.peer, "up"])
        _run(
            [
                "ip",
                "netns",
                "exec",
                h.netns,
                "sh",
                "-c",
                'for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do [ -e "$f" ] && echo 1 > "$f"; done; true',
            ]
        )
        _run(
            ["ip", "-n", h.netns, "-batch", "-"],
            input="\n".join(
                [
                    f"link set {h.veth} name eth0",
                    f"addr add {h.address}/{h.prefix_len} dev eth0",
                    "link set lo up",
                    "link set eth0 up",
                    *(f"route replace {r} dev eth0 scope link" for r in h.routes),
                    "",
                ]
            ),
        )

    def _set_neighbours(self) -> None:
        """Static ARP entries, so a cut link is silent (no 'no route to host')."""
        _run(
            ["ip", "-batch", "-"],
            input="".join(
                f"neigh replace {h.address} lladdr {h.mac} dev {self.bridge} nud permanent\n" for h in self.hosts
            ),
        )
        for h in self.hosts:
            lines = [f"neigh replace {self.bridge_address} lladdr {self.bridge_mac} dev eth0 nud permanent"]
            lines += [
                f"neigh replace {o.address} lladdr {o.mac} dev eth0 nud permanent" for o in self.hosts if o is not h
            ]
            _run(["ip", "-n", h.netns, "-batch", "-"], input="\n".join(lines) + "\n")

    # ----- hosts added and removed one by one (e.g. by a fake cloud)
    @classmethod
    def attach(
        cls,
        other: TestBed,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        readonly_root: bool | None = None,
        drop_caps: bool | None = None,
        auto_down: bool = False,
    ) -> TestBed:
        """A bed with no hosts yet on `other`'s bridge; add hosts with add_host().

        It neither makes nor removes the bridge (take it down before `other`); it has a state file of its own
        in base_dir, so one process may own it while another owns `other`.
        """
        reason = require_root_and_sshd()
        if reason:
            raise TestBedError(reason)
        if not other.bridge_address or not _link_exists(other.bridge):
            raise TestBedError(f"bridge {other.bridge} of {other!r} is not up")
        path, owns = _bed_dir(base_dir)
        bed = cls(path, _new_prefix(), owns)
        bed.owns_bridge = False
        bed.bridge, bed.bridge_mac = other.bridge, other.bridge_mac
        bed.subnet, bed.bridge_address = other.subnet, other.bridge_address
        bed.readonly_root = other.readonly_root if readonly_root is None else readonly_root
        bed.drop_caps = other.drop_caps if drop_caps is None else drop_caps
        bed._save_state()
        if auto_down:
            atexit.register(bed._down_quietly)
        return bed

    def add_host(
        self,
        name: str,
        address: str | None = None,
        *,
        prefix_len: int | None = None,
        routes: Sequence[str] = (),
        hostname: str | None = None,
        authorized_keys: str | None = None,
        host_keys: dict[str, tuple[str, str]] | None = None,
        timeout: float = 30.0,
        host_class: Callable[..., Host] | None = None,
    ) -> Host:
        """Bring up one more host and return it once sshd answers.

        address: by default the next free one of the bed's subnet; an address outside it (say 10.77.0.4 with
        prefix_len 20) needs add_bridge_route() for its network so that this machine reaches it, and the host
        gets an on-link route to the bed's subnet (the bridge address) besides `routes`.  authorized_keys: the
        public key lines root accepts; default the bed's client key.  host_keys: see Host._write_config (default:
        a new ed25519 key).  Never a default route.  host_class: makes the Host (same
        arguments as Host()), e.g. a host that boots an OS image of its own (tests/fakecloud/machine.py).
        """
        with self._state_lock:
            if any(h.name == name for h in self.hosts):
                raise TestBedError(f"a host named {name} exists already")
            index = max([self.next_index, *(h.index + 1 for h in self.hosts)])
            self.next_index = index + 1
            bed_net = ipaddress.ip_network(self.subnet)
            if address is None:
                address, prefix_len = str(bed_net.network_address + 10 + index), 24
                if ipaddress.ip_address(address) not in bed_net or index > 240:
                    raise TestBedError(f"no free address left in {self.subnet}")
            prefix_len = prefix_len or 24
            if any(h.address == address for h in self.hosts) or address == self.bridge_address:
                raise TestBedError(f"address {address} is taken")
            h = (host_class or Host)(
                self,
                index,
                name,
                f"{self.prefix}-{name}",
                address,
                _random_mac(),
                f"{self.prefix}v{index}",
                f"{self.prefix}p{index}",
                self.base_dir / "hosts" / name,
            )
            h.hostname = hostname or name
            h.prefix_len = prefix_len
            h.routes = list(routes)
            own_net = ipaddress.ip_interface(f"{address}/{prefix_len}").network
            if ipaddress.ip_address(self.bridge_address) not in own_net and self.subnet not in h.routes:
                h.routes.append(self.subnet)
            self.hosts.append(h)
        self._save_state()
        try:
            if authorized_keys is None:
                if not self.key_path.exists():
                    self._make_client_key()
                authorized_keys = self.public_key_path.read_text()
            self._make_host_network(h)
            _run(["ip", "neigh", "replace", h.address, "lladdr", h.mac, "dev", self.bridge, "nud", "permanent"])
            _run(
                [
                    "ip",
                    "-n",
                    h.netns,
                    "neigh",
                    "replace",
                    self.bridge_address,
                    "lladdr",
                    self.bridge_mac,
                    "dev",
                    "eth0",
                    "nud",
                    "permanent",
                ]
            )
            h._write_config(authorized_keys, host_keys)
            self._save_state()
            h._start_holder(self.readonly_root, timeout=timeout)
            h.start_sshd(timeout=timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                self.remove_host(h)
            raise
        self.refresh_known_hosts()
        self._save_state()
        return h

    def remove_host(self, host: Host, timeout: float = 10.0) -> None:
        """Remove one host: its processes, namespace, links, neighbour entry and directory."""
        with self._state_lock:
            for entry in [w for w in self._watchers if w[0] is host]:
                self._watchers.remove(entry)
        with host._lock:
            targets: dict[int, int] = {}
            for attempt in range(3):
                found = self._host_processes([host])
                if not found:
                    break
                targets.update(found)
                inits = {p: st for p, st in found.items() if attempt > 0 or self._is_host_init(p)}
                for pid, start in (inits or found).items():
                    if _same_process(pid, start):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                for popen in (host._sshd, host._holder):
                    if popen is not None:
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            popen.wait(timeout)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and any(_same_process(*t) for t in targets.items()):
                    time.sleep(0.01)
            left = [pid for pid, start in targets.items() if _same_process(pid, start)]
            if left:
                raise TestBedError(f"{host.name}: processes {left} survived")
            if host.netns in _netns_list():
                _run(["ip", "netns", "del", host.netns])
            for link in (host.peer, host.veth):
                if _link_exists(link):
                    _run(["ip", "link", "del", link], check=False)
            if _link_exists(self.bridge):
                _run(["ip", "neigh", "del", host.address, "dev", self.bridge], check=False)
            mp = f"/run/netns/{host.netns}"
            if f" {mp} " in Path("/proc/self/mounts").read_text():
                _run(["umount", mp], check=False)
            with contextlib.suppress(OSError):
                os.unlink(mp)
            shutil.rmtree(host.dir, ignore_errors=True)
            host._sshd = host._holder = None
            host.init_pid = host.init_start = host.sshd_pid = host.sshd_start = None
            host.powered_on = False
        with self._state_lock:
            if host in self.hosts:
                self.hosts.remove(host)
        self.refresh_known_hosts()
        self._save_state()

    def add_bridge_route(self, cidr: str) -> None:
        """Route cidr to the bridge on this machine (so it reaches hosts added with addresses in it).

        Refuses a network this machine uses already (an address or a route of it overlaps cidr).  The route
        is recorded and removed by remove_bridge_route() or down().
        """
        net = ipaddress.ip_network(cidr, strict=False)
        cidr = str(net)
        with _global_lock():
            if cidr in self.bridge_routes:
                return
            self._refuse_used(net, f"cannot route {cidr} to the bridge")
            with self._state_lock:
                self.bridge_routes.append(cidr)
            self._save_state()
            _run(["ip", "route", "add", cidr, "dev", self.bridge, "src", self.bridge_address])

    def add_host_address(self, host: Host, address: str) -> None:
        """One more address for `host` (/32 on its eth0; its sshd listens on every address it has) that only this
        machine reaches, by a /32 route to the bridge (add_bridge_route): the other hosts have no route to it.
        Removed by remove_host_address(), or with the host's namespace and the bed's routes."""
        _run(["ip", "-n", host.netns, "addr", "replace", f"{address}/32", "dev", "eth0"])
        self.add_bridge_route(f"{address}/32")

    def remove_host_address(self, host: Host, address: str) -> None:
        self.remove_bridge_route(f"{address}/32")
        if host.netns in _netns_list():
            _run(["ip", "-n", host.netns, "addr", "del", f"{address}/32", "dev", "eth0"], check=False)

    def _refuse_used(self, net: ipaddress.IPv4Network | ipaddress.IPv6Network, what: str) -> None:
        """Raise if this machine uses a network overlapping `net` (other than this bed's own bridge routes;
        unreachable guards only keep packets in, so they do not count)."""
        for used in _used_networks(guards=False):
            if str(used) not in self.bridge_routes and net.overlaps(used):
                raise TestBedError(f"{what}: this machine uses {used} already")

    def add_unreachable_route(self, cidr: str) -> None:
        """Make cidr unreachable on this machine, below any more specific route (add_bridge_route's): a packet to
        an address of it that no host has (yet) fails at once here instead of leaving by the default route.

        Refuses a network this machine uses already; removed by down().
        """
        net = ipaddress.ip_network(cidr, strict=False)
        cidr = str(net)
        with _global_lock():
            if any(c == cidr for c, _ in self.unreachable_routes):
                return
            self._refuse_used(net, f"cannot make {cidr} unreachable")
            # Other beds (other fake clouds) may guard the same range: each has its own metric, removes only its own.
            shown = _run(["ip", "-4", "-j", "route", "show", "type", "unreachable", cidr]).stdout
            taken = {int(r.get("metric", 0)) for r in json.loads(shown or "[]")}
            try:
                metric = 1 + int(self.prefix[-4:], 16)  # littbXXXX: unique among the beds up
            except ValueError:
                metric = 1
            while metric in taken:
                metric += 1
            with self._state_lock:
                self.unreachable_routes.append((cidr, metric))
            self._save_state()
            _run(["ip", "route", "add", "unreachable", cidr, "metric", str(metric)])

    def remove_bridge_route(self, cidr: str) -> None:
        cidr = str(ipaddress.ip_network(cidr, strict=False))
        if cidr not in self.bridge_routes:
            return
        if _link_exists(self.bridge):
            _run(["ip", "route", "del", cidr, "dev", self.bridge], check=False)
        with self._state_lock:
            self.bridge_routes.remove(cidr)
        self._save_state()

    def _cap_drop_argv(self) -> list[str]:
        """Command prefix that drops DROPPED_CAPS for sshd and its sessions."""
        if not self.drop_caps:
            return []
        caps = ",".join(str(n) for n in DROPPED_CAPS.values())
        return [HOST_PYTHON, "-I", "-S", "-c", _CAPDROP_CODE, caps]

    # ----- keys
    def known_hosts_text(self) -> str:
        """known_hosts lines for every host's current host key."""
        return "".join(h.host_key_line + "\n" for h in self.hosts if h.host_key_line)

    def refresh_known_hosts(self) -> None:
        """Write known_hosts with every host's current key (e.g. after rotate_host_key)."""
        tmp = self.known_hosts_path.with_suffix(".tmp")
        tmp.write_text(self.known_hosts_text())
        os.replace(tmp, self.known_hosts_path)

    @property
    def ssh_config_path(self) -> Path:
        """An ssh_config with a block per host name (ssh -F PATH h1)."""
        return self.base_dir / "ssh_config"

    def ssh_config_text(self) -> str:
        blocks = []
        for h in self.hosts:
            blocks.append(
                f"Host {h.name} {h.address}\n"
                f"    HostName {h.address}\n"
                f"    User {h.user}\n"
                f"    Port {h.port}\n"
                f"    IdentityFile {self.key_path}\n"
                "    IdentitiesOnly yes\n"
                "    BatchMode yes\n"
                f"    UserKnownHostsFile {self.known_hosts_path}\n"
                "    GlobalKnownHostsFile /dev/null\n"
                "    StrictHostKeyChecking yes\n"
                "    UpdateHostKeys no\n"
                "    LogLevel ERROR\n"
            )
        return "\n".join(blocks)

    def ssh_base_argv(self) -> list[str]:
        """ssh and its options (strict host keys, the bed's key), without the target."""
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.key_path),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts_path}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
        ]

    # ----- events watcher
    def _watch(self, host: Host, callback: Callable[[Host, str], None]) -> Callable[[], None]:
        entry = (host, callback, [len(host.events())])
        with self._state_lock:
            self._watchers.append(entry)
            if self._watch_thread is None:
                self._watch_thread = threading.Thread(
                    target=self._watch_loop, name=f"{self.prefix}-events", daemon=True
                )
                self._watch_thread.start()

        def cancel() -> None:
            with self._state_lock:
                if entry in self._watchers:
                    self._watchers.remove(entry)

        return cancel

    def _watch_loop(self) -> None:
        while not self._watch_stop.wait(0.1):
            with self._state_lock:
                watchers = list(self._watchers)
            for entry in watchers:
                host, cb, seen = entry
                with self._state_lock:
                    if entry not in self._watchers:
                        continue
                evs = host.events()
                for e in evs[seen[0] :]:
                    try:
                        cb(host, e)
                    except Exception as exc:  # keep watching
                        print(f"lit testbed: event callback failed: {exc!r}", file=sys.stderr)
                seen[0] = len(evs)

    # ----- state file
    def _to_state(self) -> dict[str, Any]:
        return {
            "version": 1,
            "prefix": self.prefix,
            "base_dir": str(self.base_dir),
            "owns_dir": self.owns_dir,
            "bridge": self.bridge,
            "bridge_mac": self.bridge_mac,
            "subnet": self.subnet,
            "bridge_address": self.bridge_address,
            "readonly_root": self.readonly_root,
            "drop_caps": self.drop_caps,
            "key_path": str(self.key_path),
            "known_hosts_path": str(self.known_hosts_path),
            "created_at": self.created_at,
            "creator_pid": os.getpid(),
            "creator_start": _proc_start(os.getpid()),
            "netns": [h.netns for h in self.hosts],
            "links": [self.bridge, *[h.peer for h in self.hosts]],
            "mounts": [f"/run/netns/{h.netns}" for h in self.hosts],
            "hosts": [h._to_state() for h in self.hosts],
            "owns_bridge": self.owns_bridge,
            "bridge_routes": self.bridge_routes,
            "unreachable_routes": self.unreachable_routes,
            "next_index": max([self.next_index, *(h.index + 1 for h in self.hosts)]),
        }

    def _save_state(self) -> None:
        with self._state_lock:
            if self._is_down:
                return
            tmp = self.state_path.with_name(f".{STATE_FILE}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(json.dumps(self._to_state(), indent=2) + "\n")
            os.replace(tmp, self.state_path)

    @classmethod
    def load(cls, base_dir: str | os.PathLike[str] | None = None) -> TestBed:
        """The bed recorded in base_dir's state file (default: default_dir())."""
        path = Path(base_dir) if base_dir is not None else default_dir()
        st = json.loads((path / STATE_FILE).read_text())
        bed = cls(Path(st["base_dir"]), st["prefix"], st.get("owns_dir", False))
        bed.bridge = st["bridge"]
        bed.bridge_mac = st.get("bridge_mac", bed.bridge_mac)
        bed.subnet = st.get("subnet", "")
        bed.bridge_address = st.get("bridge_address", "")
        bed.readonly_root = st.get("readonly_root", True)
        bed.drop_caps = st.get("drop_caps", True)
        bed.key_path = Path(st["key_path"])
        bed.known_hosts_path = Path(st["known_hosts_path"])
        bed.created_at = st.get("created_at", 0.0)
        bed.creator = (st.get("creator_pid"), st.get("creator_start"))
        bed.hosts = [Host._from_state(bed, d) for d in st.get("hosts", [])]
        bed.owns_bridge = st.get("owns_bridge", True)
        bed.bridge_routes = list(st.get("bridge_routes", []))
        bed.unreachable_routes = [(str(c), int(m)) for c, m in st.get("unreachable_routes", [])]
        bed.next_index = st.get("next_index", len(bed.hosts) + 1)
        return bed

    # ----- take down
    def _down_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.down()

    def down(self) -> None:
        """Remove every process, namespace, link and file this bed made.

        Safe to call twice and after a partial bring-up.  Raises TestBedError
        if something could not be removed.
        """
        with self._state_lock:
            if self._is_down:
                return
        self._watch_stop.set()
        problems: list[str] = []
        # 1. Processes: the ones recorded (checked against their start time)
        #    and any process inside one of the bed's network namespaces
        #    (only the bed puts processes there; this also finds a holder
        #    started just before a crash, before its pid was recorded).
        #    Killing a host's init (PID 1 of its PID namespace) makes the
        #    kernel kill everything in that namespace.
        targets: dict[int, int] = {}
        for attempt in range(4):
            found = self._bed_processes()
            if not found:
                break
            targets.update(found)
            # First the inits only: the kernel then kills the rest of each
            # host while the nsenter and holder processes, still alive, reap
            # their children; killing everything at once leaves zombies that
            # hold the dying namespace up for seconds.
            inits = {p: st for p, st in found.items() if attempt > 0 or self._is_host_init(p)}
            for pid, start in (inits or found).items():
                if _same_process(pid, start):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            for h in self.hosts:
                for popen in (h._sshd, h._holder):
                    if popen is not None:
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            popen.wait(2 if attempt == 0 else 5)
            deadline = time.monotonic() + (2 if attempt == 0 else 5)
            while time.monotonic() < deadline and any(_same_process(*t) for t in targets.items()):
                time.sleep(0.01)
        for pid, start in targets.items():
            if _same_process(pid, start):
                problems.append(f"process {pid} still running")
        if problems:  # keep the namespaces (and state) so that a retry finds them
            raise TestBedError("test bed down could not stop: " + "; ".join(problems))
        # 2. Routes and neighbour entries this bed put on a bridge it shares, namespaces (their veth ends
        #    go with them), then links.
        for cidr, metric in self.unreachable_routes:
            _run(["ip", "route", "del", "unreachable", cidr, "metric", str(metric)], check=False)
        if _link_exists(self.bridge):
            for cidr in list(self.bridge_routes):
                _run(["ip", "route", "del", cidr, "dev", self.bridge], check=False)
            if not self.owns_bridge:
                for h in self.hosts:
                    _run(["ip", "neigh", "del", h.address, "dev", self.bridge], check=False)
        existing = _netns_list()
        for h in self.hosts:
            if h.netns in existing:
                p = _run(["ip", "netns", "del", h.netns], check=False)
                if p.returncode != 0:
                    problems.append(f"ip netns del {h.netns}: {p.stderr.strip()}")
        for link in [h.peer for h in self.hosts] + [h.veth for h in self.hosts] + [self.bridge] * self.owns_bridge:
            if _link_exists(link):
                p = _run(["ip", "link", "del", link], check=False)
                if p.returncode != 0 and _link_exists(link):
                    problems.append(f"ip link del {link}: {p.stderr.strip()}")
        mounts = Path("/proc/self/mounts").read_text()
        for h in self.hosts:
            mp = f"/run/netns/{h.netns}"
            if f" {mp} " in mounts:
                p = _run(["umount", mp], check=False)
                if p.returncode != 0:
                    problems.append(f"umount {mp}: {p.stderr.strip()}")
            with contextlib.suppress(OSError):
                os.unlink(mp)
        if problems:
            raise TestBedError("test bed down left things behind: " + "; ".join(problems))
        # 3. Files.
        with self._state_lock:
            self._is_down = True
        if self.owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        else:
            self.state_path.unlink(missing_ok=True)
            for h in self.hosts:
                shutil.rmtree(h.dir, ignore_errors=True)
            for p in (self.key_path, self.public_key_path, self.known_hosts_path):
                p.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                (self.base_dir / "hosts").rmdir()

    def _is_host_init(self, pid: int) -> bool:
        """pid is PID 1 of a PID namespace of its own (a host's init)."""
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("NSpid:"):
                    ids = line.split()[1:]
                    return len(ids) > 1 and ids[-1] == "1"
        except OSError:
            pass
        return False

    def _bed_processes(self) -> dict[int, int]:
        """pid -> start time of every live process this bed made."""
        return self._host_processes(self.hosts)

    def _host_processes(self, hosts: Sequence[Host]) -> dict[int, int]:
        """pid -> start time of every live process of these hosts."""
        out: dict[int, int] = {}
        for h in hosts:
            for pid, start in (
                (h.init_pid, h.init_start),
                (h.sshd_pid, h.sshd_start),
                (h.holder_pid, h.holder_start),
            ):
                if pid and start is not None and _same_process(pid, start):
                    out[pid] = start
        netns_ids = set()
        for h in hosts:
            with contextlib.suppress(OSError):
                st = os.stat(f"/run/netns/{h.netns}")
                netns_ids.add((st.st_dev, st.st_ino))
        if netns_ids:
            for d in Path("/proc").iterdir():
                if not d.name.isdigit():
                    continue
                try:
                    st = os.stat(d / "ns" / "net")
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in netns_ids:
                    start = _proc_start(int(d.name))
                    if start is not None:
                        out[int(d.name)] = start
        return out

    @staticmethod
    def recorded_dirs() -> list[Path]:
        """Bed directories with a state file: default_dir() and <tmp>/lit-testbed-*."""
        dirs = [default_dir(), *sorted(Path(tempfile.gettempdir()).glob("lit-testbed-*"))]
        return [d for d in dirs if (d / STATE_FILE).is_file()]

    @classmethod
    def down_abandoned(cls) -> list[Path]:
        """Take down every recorded bed whose creating process is gone.

        For a CI script or after a killed test run: a bed made by the command
        line (whose process has exited) counts as abandoned too.
        """
        done = []
        for d in cls.recorded_dirs():
            try:
                bed = cls.load(d)
            except (OSError, ValueError, KeyError):
                continue
            if _same_process(*bed.creator):
                continue
            bed.down()
            done.append(d)
        return done

    @classmethod
    def down_dir(cls, base_dir: str | os.PathLike[str] | None = None) -> bool:
        """Take down the bed recorded in base_dir; False if none is recorded there."""
        path = Path(base_dir) if base_dir is not None else default_dir()
        if not (path / STATE_FILE).exists():
            return False
        cls.load(path).down()
        return True


def testbed_fixture(n_hosts: int = 3, **kwargs: Any) -> Iterator[TestBed]:
    """Generator for a pytest fixture: yields a bed that is up, takes it down after.

    Usage::

        @pytest.fixture(scope="module")
        def bed():
            reason = require_root_and_sshd()
            if reason:
                pytest.skip(reason)
            yield from testbed_fixture(3)
    """
    bed = TestBed.up(n_hosts, **kwargs)
    try:
        yield bed
    finally:
        bed.down()


testbed_fixture.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------
def _print_bed(bed: TestBed) -> None:
    print(f"lit test bed {bed.prefix}: {len(bed.hosts)} hosts on {bed.subnet} (dir {bed.base_dir})")
    for h in bed.hosts:
        print(f"  {h.name}  {h.target}")
    print(f"bridge address: {bed.bridge_address}")
    print(f"key:            {bed.key_path}")
    print(f"known_hosts:    {bed.known_hosts_path}")
    if bed.hosts:
        print(f"ssh to {bed.hosts[0].name}:      {shlex.join(bed.hosts[0].ssh_argv())}")
    print(f"take it down:   python -m tests.testbed down --dir {bed.base_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.testbed", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a_up = sub.add_parser("up", help="bring up N hosts")
    a_up.add_argument("n", type=int, nargs="?", default=3)
    a_up.add_argument("--dir", default=None, help="bed directory (default $LIT_TESTBED_DIR or /tmp/lit-testbed)")
    a_up.add_argument("--rw-root", action="store_true", help="leave the shared filesystem writable on hosts")
    a_up.add_argument(
        "--keep-caps", action="store_true", help="do not drop mount/network capabilities for ssh sessions"
    )
    a_down = sub.add_parser("down", help="remove everything the bed in --dir made")
    a_down.add_argument("--dir", default=None)
    a_down.add_argument(
        "--all",
        action="store_true",
        help="take down every bed (in the default dir and <tmp>/lit-testbed-*) whose creator is gone",
    )
    a_st = sub.add_parser("status", help="show the bed in --dir")
    a_st.add_argument("--dir", default=None)
    args = ap.parse_args(argv)
    d = Path(args.dir) if args.dir else default_dir()
    try:
        if args.cmd == "up":
            t0 = time.monotonic()
            bed = TestBed.up(args.n, d, readonly_root=not args.rw_root, drop_caps=not args.keep_caps, auto_down=False)
            _print_bed(bed)
            print(f"up in {time.monotonic() - t0:.1f}s")
        elif args.cmd == "down" and args.all:
            for done in TestBed.down_abandoned():
                print(f"test bed in {done} is down")
        elif args.cmd == "down":
            if TestBed.down_dir(d):
                print(f"test bed in {d} is down")
            else:
                print(f"no test bed recorded in {d}")
        else:
            if not (d / STATE_FILE).exists():
                print(f"no test bed recorded in {d}")
                return 1
            bed = TestBed.load(d)
            _print_bed(bed)
            for h in bed.hosts:
                alive = _same_process(h.init_pid, h.init_start)
                print(
                    f"  {h.name}: host {'running' if alive else 'NOT running'}, "
                    f"sshd {'running' if h.sshd_running() else 'stopped'}, "
                    f"link {'up' if h.link_is_up else 'down'}"
                )
    except TestBedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
