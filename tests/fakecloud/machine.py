"""A fake cloud's instance as a test-bed host that boots the OS image of image.py, configured by real cloud-init.

An ``ImageHost`` is a test-bed host (tests/testbed.py: its network namespace on the bridge, its address and on-link
routes, a holder process whose child is PID 1 of a PID namespace of its own, in mount, UTS and IPC namespaces of
its own) whose init program (INIT_CODE: PID 1, run by the machine's python3 up to 5., then by the image's own) does
what a boot does:

1. the instance's disk: an overlay (overlayfs) with the image as its lower layer and ``<host dir>/disk/{upper,work}``
   as its upper layer, mounted at ``<host dir>/root``;
2. in it: ``/proc`` of the instance's PID namespace (``/proc/sys`` and ``/proc/sysrq-trigger`` read-only), ``/sys``
   read-only (sysfs of the instance's network namespace), a minimal ``/dev`` (null, zero, full, random, urandom,
   tty, a devpts of its own with ptmx, tmpfs /dev/shm), tmpfs ``/run`` and ``/tmp``; the stand-ins of
   shutdown/poweroff/halt/reboot/telinit/systemctl bound read-only over those commands, and the host's events
   file (``<host dir>/events``, where they record) bound at /run/lit-testbed/events: the only file of this
   machine an instance sees;
3. the NoCloud seed, as a cloud's config drive gives it at each boot (cloud-init's "NoCloud" datasource page):
   ``/var/lib/cloud/seed/nocloud/user-data`` (the instance's user data as EC2 has it) and ``meta-data``
   (``instance-id: <the EC2 instance id>``, ``local-hostname: ip-10-77-0-4``);
4. the host name ``ip-10-77-0-4`` (EC2's DHCP gives it to a real instance before cloud-init runs);
5. ``pivot_root`` into the overlay and the machine's root detached: from here on the instance sees only its disk
   and what 2. mounted; PID 1 execs the image's python3 (on a copy of INIT_CODE in the instance's /run);
6. Debian's cloud-init, its four stages one after the other as its systemd units would run them ("Boot stages" of
   cloud-init's docs): ``cloud-init init --local``, ``cloud-init init``, ``cloud-init modules --mode=config``,
   ``cloud-init modules --mode=final``; on the first boot they create the default user ``ubuntu`` (passwordless
   sudo), write the host keys of ``ssh_keys`` and the authorized keys; on a later boot of the same instance id
   the per-instance modules do not run again;
7. the image's own sshd (``/usr/sbin/sshd -D -e``, its /etc/ssh/sshd_config as cloud-init left it), started,
   as systemd orders it on a real image, once the network stage (``cloud-init init``, whose unit is
   ``Before=sshd.service``; its modules make the default user and write the keys) is done: the config and final
   stages still run when SSH first answers, as they may on EC2 (``cloud-init status`` says running until then).

Each stage and sshd run without the capabilities the test bed takes from its sshd (``DROPPED_CAPS``: no mounts,
no network changes, no reboot, ...), except CAP_AUDIT_CONTROL for sshd: Debian's PAM stack for sshd sets the login
uid (pam_loginuid), and the kernel refuses any other audit control outside the initial PID namespace. So
nothing inside (cloud-init, ``runcmd``, an ssh session, sudo) can mount, unmount or leave the instance's network.
The times of the stages go to ``<host dir>/boot.log``; cloud-init's own logs are in the instance
(/var/log/cloud-init.log, /var/log/cloud-init-output.log), sshd's log in ``<host dir>/sshd.log``.

Stop (power_off) ends every process of the instance (its PID namespace goes, with its mounts); the disk
(``<host dir>/disk``) stays. Start (power_on) boots again from it. Terminate (TestBed.remove_host) removes the host
directory, the disk with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

from tests.testbed import (
    _STANDIN,
    DROPPED_CAPS,
    EVENTS_FILE,
    Host,
    TestBedError,
    _same_process,
    _wait_for,
)

from .image import STANDIN_PATHS

BOOT_LOG = "boot.log"
CLOUD_INIT_STAGES = (
    ["init", "--local"],
    ["init"],
    ["modules", "--mode=config"],
    ["modules", "--mode=final"],
)
SSHD_AFTER_STAGES = 2  # sshd starts after init --local and init (the network stage), before config and final
STAGE_TIMEOUT = 300.0
# sshd keeps CAP_AUDIT_CONTROL (see the module docstring); everything else the test bed drops
SSHD_KEEPS = ("audit_control",)

INIT_CODE = r"""
# lit fake cloud: PID 1 of one instance (written by tests/fakecloud/machine.py; see its docstring).
import ctypes, json, os, signal, socket, sys, time, traceback

with open(sys.argv[1]) as _f:
    cfg = json.load(_f)
with open(sys.argv[0]) as _f:
    CODE = _f.read()  # copied into the instance for the image's python3 to run (PID 1 after the switch)
IN_RUN = "/run/lit-fakecloud"
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = 155  # x86_64
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
       "LANG": "C.UTF-8", "TERM": "dumb"}

def b(s):
    return None if s is None else s.encode()

def check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))

def mount(src, tgt, fstype=None, flags=0, data=None):
    check(libc.mount(b(src), b(tgt), b(fstype), flags, b(data)), "mount %r on %r (%r)" % (src, tgt, fstype))

def tmpfs(tgt, mode):
    os.makedirs(tgt, exist_ok=True)
    mount("lit-fakecloud", tgt, "tmpfs", MS_NOSUID | MS_NODEV, "mode=" + mode)

def bind(src, tgt, readonly=False):
    mount(src, tgt, None, MS_BIND)
    if readonly:
        mount(None, tgt, None, MS_REMOUNT | MS_BIND | MS_RDONLY)

def inside(root, path):
    # path in the image, resolved within root (symlinks such as /sbin -> usr/sbin), or None
    real = os.path.realpath(root + path)
    return real if real == root or real.startswith(root + "/") else None

def write(path, data, mode):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)

def setup():
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    hostdir, root = cfg["hostdir"], cfg["root"]
    for d in (root, cfg["upper"], cfg["work"]):
        os.makedirs(d, mode=0o755, exist_ok=True)
    # 1. the disk
    mount("lit-fakecloud", root, "overlay", 0,
          "lowerdir=%s,upperdir=%s,workdir=%s" % (cfg["image"], cfg["upper"], cfg["work"]))
    # 2. kernel file systems, /dev, /run, /tmp
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for p in ("/proc/sys", "/proc/sysrq-trigger"):
        if os.path.exists(root + p):
            bind(root + p, root + p, readonly=True)
    mount("sysfs", root + "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    dev = root + "/dev"
    tmpfs(dev, "0755")
    for n in ("null", "zero", "full", "random", "urandom", "tty"):
        open(dev + "/" + n, "w").close()
        bind("/dev/" + n, dev + "/" + n)
    os.makedirs(dev + "/pts")
    mount("devpts", dev + "/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    os.symlink("pts/ptmx", dev + "/ptmx")
    tmpfs(dev + "/shm", "1777")
    for n, t in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                 ("stderr", "/proc/self/fd/2")):
        os.symlink(t, dev + "/" + n)
    tmpfs(root + "/run", "0755")
    tmpfs(root + "/tmp", "1777")
    for d in ("/run/lock", "/run/sshd", "/run/lit-testbed", "/run/lit-testbed-bin"):
        os.makedirs(root + d, mode=0o755, exist_ok=True)
    # the stand-ins, and the events file they append to
    events = root + "/run/lit-testbed/events"
    open(events, "a").close()
    bind(os.path.join(hostdir, cfg["events"]), events)
    standin = root + "/run/lit-testbed-bin/standin"
    write(standin, cfg["standin"].encode(), 0o755)
    done = set()
    for p in cfg["standin_paths"]:
        for d in ("", "/usr"):  # /sbin/x and /usr/sbin/x may be one file (usr-merge) or two
            real = inside(root, d + p[len("/usr"):] if p.startswith("/usr/") else p)
            if real and real not in done and os.path.isfile(real):
                bind(standin, real, readonly=True)
                done.add(real)
    # 3. the NoCloud seed
    seed = root + "/var/lib/cloud/seed/nocloud"
    os.makedirs(seed, mode=0o755, exist_ok=True)
    with open(os.path.join(hostdir, "user-data"), "rb") as f:
        write(seed + "/user-data", f.read(), 0o600)
    meta = "instance-id: %s\nlocal-hostname: %s\n" % (cfg["instance_id"], cfg["hostname"])
    write(seed + "/meta-data", meta.encode(), 0o644)
    # 4. the host name
    socket.sethostname(cfg["hostname"])
    # 5. into the disk, the machine's root detached
    os.chdir(root)
    check(libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    check(libc.umount2(b".", MNT_DETACH), "detaching the old root")
    os.chdir("/")

def drop_caps(caps):
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for n in caps:
        if n <= last and libc.prctl(24, n, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "dropping capability %d" % n)

def spawn(argv, caps, out):
    pid = os.fork()
    if pid == 0:
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            os.setsid()
            drop_caps(caps)
            fd = os.open("/dev/null", os.O_RDONLY)
            os.dup2(fd, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.execve(argv[0], argv, ENV)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(127)
    return pid

def boot(log, sshd_log):
    # 6. cloud-init's stages, with 7. sshd started after the network stage (this runs in a child of PID 1)
    t_boot = time.monotonic()
    for number, stage in enumerate(cfg["stages"]):
        if number == cfg["sshd_after"]:
            os.write(log, ("lit-fakecloud: cloud-init's network stage done in %.2fs; starting sshd\n"
                           % (time.monotonic() - t_boot)).encode())
            spawn(["/usr/sbin/sshd", "-D", "-e"], cfg["sshd_caps"], sshd_log)
        t0 = time.monotonic()
        pid = spawn(["/usr/bin/cloud-init"] + stage, cfg["caps"], log)
        deadline = t0 + cfg["stage_timeout"]
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = -1
                break
            time.sleep(0.02)
        os.write(log, ("lit-fakecloud: cloud-init %s: exit status %s in %.2fs\n"
                       % (" ".join(stage), os.waitstatus_to_exitcode(status) if status != -1 else "timeout",
                          time.monotonic() - t0)).encode())
    os.write(log, ("lit-fakecloud: cloud-init done in %.2fs\n" % (time.monotonic() - t_boot)).encode())

def main():
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(s, lambda *a: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    if sys.argv[2:3] == ["--booted"]:
        run(int(sys.argv[3]), int(sys.argv[4]))
    hostdir = cfg["hostdir"]
    # `ready` is outside the instance once setup() is done: written through a descriptor opened before
    ready = os.open(os.path.join(hostdir, "ready"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    log = os.open(os.path.join(hostdir, cfg["boot_log"]), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    sshd_log = os.open(os.path.join(hostdir, "sshd.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                       0o644)
    try:
        setup()
    except BaseException as e:
        traceback.print_exc()
        os.write(ready, ("error: %s\n" % e).encode())
        sys.exit(1)
    os.write(log, b"lit-fakecloud: mounted, booting\n")
    os.write(ready, b"ok\n")
    os.close(ready)
    # PID 1 becomes the image's own python3 (nothing of this machine's stays in the instance: not even the
    # program of its PID 1), running this code from the instance's /run
    os.makedirs(IN_RUN, mode=0o700, exist_ok=True)
    write(IN_RUN + "/init.py", CODE.encode(), 0o600)
    write(IN_RUN + "/init.json", json.dumps(cfg).encode(), 0o600)
    for fd in (log, sshd_log):
        os.set_inheritable(fd, True)
    os.execv("/usr/bin/python3", ["/usr/bin/python3", "-I", "-S", IN_RUN + "/init.py", IN_RUN + "/init.json",
                                  "--booted", str(log), str(sshd_log)])

def run(log, sshd_log):
    # PID 1 in the instance, the image's python3: boot, then reap orphans until killed
    for fd in (log, sshd_log):
        os.set_inheritable(fd, False)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            boot(log, sshd_log)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(0)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    os.close(log)
    os.close(sshd_log)
    while True:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        # SIGTERM, SIGINT and SIGHUP are taken and ignored, as a real init does: only SIGKILL from outside the
        # instance (power_off, remove_host) ends it
        signal.sigtimedwait({signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}, 5.0)

main()
"""


class ImageHost(Host):
    """A test-bed host that boots the image (see the module docstring); make it with
    ``bed.add_host(..., host_class=lambda *a: ImageHost(*a, image=..., user_data=..., instance_id=...))``."""

    init_code = INIT_CODE
    init_file = "fakecloud-init.py"
    mount_proc = False  # the init mounts the instance's own /proc in its disk

    def __init__(self, *args: Any, image: Path, user_data: Optional[bytes], instance_id: str) -> None:
        super().__init__(*args)
        self.image = Path(image)
        self.user_data = user_data or b""
        self.instance_id = instance_id
        self.boots = 0
        self.boot_seconds = 0.0  # of the last boot: from the init's start to sshd answering

    @property
    def disk(self) -> Path:
        """The instance's disk: the upper layer (and work directory) of its overlay over the image."""
        return self.dir / "disk"

    @property
    def boot_log_path(self) -> Path:
        return self.dir / BOOT_LOG

    def _to_state(self) -> dict[str, Any]:
        return {**super()._to_state(), "kind": "image", "image": str(self.image), "instance_id": self.instance_id}

    def _write_config(self, client_pubkey: str, host_keys: Optional[dict[str, tuple[str, str]]] = None) -> None:
        """The seed cloud-init reads at each boot (the keys come from the user data, not from the bed)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.events_path.touch()
        fd = os.open(self.dir / "user-data", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.user_data)
        self.host_key_types = []

    def _init_config(self, readonly_root: bool) -> dict[str, Any]:
        all_caps = sorted(DROPPED_CAPS.values())
        return {
            "hostdir": str(self.dir),
            "root": str(self.dir / "root"),
            "image": str(self.image),
            "upper": str(self.disk / "upper"),
            "work": str(self.disk / "work"),
            "hostname": self.hostname,
            "instance_id": self.instance_id,
            "events": EVENTS_FILE,
            "standin": _STANDIN,
            "standin_paths": list(STANDIN_PATHS),
            "stages": [list(s) for s in CLOUD_INIT_STAGES],
            "sshd_after": SSHD_AFTER_STAGES,
            "stage_timeout": STAGE_TIMEOUT,
            "boot_log": BOOT_LOG,
            "caps": all_caps,
            "sshd_caps": [n for n in all_caps if n not in {DROPPED_CAPS[k] for k in SSHD_KEEPS}],
        }

    def _start_holder(self, readonly_root: bool, timeout: float = 30.0) -> None:
        if not (self.image / "usr/bin/cloud-init").is_file():
            raise TestBedError(f"{self.name}: no OS image at {self.image} (python -m tests.fakecloud.image build)")
        with contextlib.suppress(OSError):
            with open(self.boot_log_path, "a") as f:
                f.write(f"lit-fakecloud: boot {self.boots + 1} of {self.instance_id} at {time.strftime('%H:%M:%S')}\n")
        super()._start_holder(readonly_root, timeout)

    def _init_log_tail(self) -> str:
        parts = []
        for p in (self.dir / "init.log", self.boot_log_path):
            with contextlib.suppress(OSError):
                parts.append(f"{p.name}: {p.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts)

    # ----- sshd: the image's, started by the boot
    def start_sshd(self, timeout: float = 15.0) -> None:
        """Wait until the boot (cloud-init's stages) is over and the image's sshd answers."""
        t0 = time.monotonic()

        def banner() -> bool:
            if not _same_process(self.init_pid, self.init_start):
                raise TestBedError(f"{self.name}: the instance's init exited: {self._init_log_tail()}")
            return self._read_banner(0.5).startswith("SSH-")

        try:
            _wait_for(banner, timeout, f"{self.name}: sshd on {self.address}:22 after cloud-init", 0.05)
        except TestBedError as exc:
            raise TestBedError(f"{exc}\n{self._init_log_tail()}\nsshd log: {self._sshd_log_tail()}") from None
        self.boots += 1
        self.boot_seconds = time.monotonic() - t0
        pub = self.disk / "upper/etc/ssh/ssh_host_ed25519_key.pub"
        with contextlib.suppress(OSError, IndexError):
            words = pub.read_text().split()
            self.host_key_line = f"{self.address} {words[0]} {words[1]}"

    def stop_sshd(self, timeout: float = 10.0) -> None:
        """The image's sshd goes with the instance's processes (power_off)."""

    def sshd_running(self) -> bool:
        return self.powered_on and self._read_banner(0.5).startswith("SSH-")

    # ----- power
    def power_off(self, timeout: float = 10.0) -> None:
        """The instance stops: its processes get SIGTERM, then its PID namespace goes (init killed); the disk
        stays."""
        with self._lock:
            if _same_process(self.init_pid, self.init_start):
                for pid in self.pids():
                    if pid != self.init_pid:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGTERM)
                with contextlib.suppress(TestBedError):
                    _wait_for(lambda: self.pids() in ([], [self.init_pid]), 2.0, "processes to end", 0.05)
                assert self.init_pid is not None
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.init_pid, signal.SIGKILL)
            if self._holder is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._holder.wait(timeout)
            elif _same_process(self.holder_pid, self.holder_start):
                assert self.holder_pid is not None
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.holder_pid, signal.SIGKILL)
            _wait_for(lambda: not self.pids() and not _same_process(self.holder_pid, self.holder_start), timeout,
                      f"{self.name}: the instance's processes to end")
            self._holder = None
            self.holder_pid = self.holder_start = self.init_pid = self.init_start = None
            self.powered_on = False

    def power_on(self, timeout: float = 120.0) -> None:
        """The instance boots again from its disk."""
        with self._lock:
            if _same_process(self.init_pid, self.init_start):
                self.powered_on = True
                return
            self._start_holder(True, timeout=timeout)
            self.start_sshd(timeout=timeout)
            self.powered_on = True


def boot_times(host_dir: Path) -> list[tuple[str, float]]:
    """(stage, seconds) of every cloud-init stage in the host's boot log, in order (all boots)."""
    out = []
    with contextlib.suppress(OSError):
        for line in (host_dir / BOOT_LOG).read_text(errors="replace").splitlines():
            if line.startswith("lit-fakecloud: cloud-init ") and " in " in line and line.endswith("s"):
                head, _, secs = line.rpartition(" in ")
                stage = head[len("lit-fakecloud: cloud-init "):].split(":")[0]
                with contextlib.suppress(ValueError):
                    out.append((stage, float(secs[:-1])))
    return out

