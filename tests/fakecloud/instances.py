"""The reconciler: every EC2 instance in moto becomes a test-bed host, and the host's power commands reach moto.

It runs as a thread of the fake cloud's moto process (motod.py) and reads moto's backends directly, every
POLL seconds, across every account and region:

* instance ``running`` (or ``pending``) and no host: (after ``boot`` seconds, default 0, as a boot takes time)
  a host named after the instance id, at the instance's
  private address (prefix of its subnet, on-link route to its VPC's CIDR and to the bridge's subnet, no default
  route), hostname ``ip-10-77-0-4``. This machine reaches it through a route for the subnet on the bridge
  (``ip route add <subnet> dev <bridge> src <bridge address>``), added only if no address or route of the
  machine overlaps the subnet. The host also has the instance's public address (from motod.py's range that
  plays the internet, 10.99.0.0/16), /32 on its eth0 with a /32 route to it on the bridge: this machine reaches
  it, the other instances do not (no route to that range), and a stopped instance has none.
  The host boots the OS image of image.py on a disk of its own (machine.py: an overlay over the image), and
  Debian's cloud-init configures it from the instance's user data (NoCloud seed, instance-id the instance id):
  the default user ``ubuntu`` (not root, passwordless ``sudo``, as on Ubuntu's images), the host keys of
  ``ssh_keys``, the authorized keys of ``ssh_authorized_keys``; then the image's sshd starts.
* ``stopping``/``stopped``: the host powers off (every process of the instance ends; its disk stays).
  ``pending``/``running`` again: it boots again from that disk (cloud-init runs, its per-instance modules do
  not: same instance id).
* ``shutting-down``/``terminated``, or gone from moto (a reset): the host is removed (processes, namespace,
  links, files), and the bridge route of its subnet once no host uses it.
* on the host, ``shutdown`` (``-h``/``-P``/``-r``, ``now``, ``+M``, ``hh:mm``; ``-c`` cancels), ``poweroff``,
  ``halt``, ``reboot``, ``systemctl poweroff|halt|reboot``, ``telinit 0|6`` (the bed's stand-ins record them):
  StopInstances in moto, or TerminateInstances if the instance's InstanceInitiatedShutdownBehavior is
  ``terminate``; RebootInstances and a power cycle for a reboot.

The hosts belong to a test bed attached to the fake cloud's bridge, recorded in ``<cloud dir>/instances``;
FakeCloud.down takes it down from that record.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Optional, TextIO

from tests.testbed import Host, TestBed, TestBedError

from .image import image_path
from .machine import ImageHost, boot_times

POLL = 0.1
BOOT_FILE = "boot_seconds"  # in the instances' bed folder: the boot time, if set while the cloud runs
BOOT_TIMEOUT = 120.0  # from the host's start to its sshd answering (cloud-init takes ~2 s here when idle)
RETRY_AFTER = 5.0
UP_STATES = ("pending", "running")
DOWN_STATES = ("stopping", "stopped")


@dataclass(frozen=True)
class Instance:
    id: str
    account: str
    region: str
    state: str
    address: str
    subnet_cidr: str
    vpc_cidr: str
    shutdown_behavior: str
    user_data: Optional[bytes]
    public_address: str = ""  # "" while it has none (a stopped instance)


def decode_user_data(value: Any) -> Optional[bytes]:
    """moto keeps user data base64-encoded (a Base64EncodedString, a str, or a list of one)."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if value is None:
        return None
    encoded = getattr(value, "_encoded_string", value)
    if isinstance(encoded, bytes):
        encoded = encoded.decode("ascii", "replace")
    try:
        return base64.b64decode(str(encoded), validate=True)
    except (binascii.Error, ValueError):
        return str(encoded).encode()


def power_action(cmd: str, now: Optional[datetime] = None) -> Optional[tuple[str, float]]:
    """What a recorded command asks of the machine: ("stop" | "reboot" | "cancel", delay in seconds), or None."""
    parts = cmd.split()
    if not parts or "--help" in parts:
        return None
    name, args = parts[0], parts[1:]
    if name == "shutdown":
        if "-c" in args:
            return ("cancel", 0.0)
        if "-k" in args:
            return None
        action = "reboot" if ("-r" in args or "--reboot" in args) else "stop"
        when = [a for a in args if not a.startswith("-")]
        delay = 60.0  # systemd's shutdown without a time: in a minute
        if when:
            t = when[0]
            if t == "now":
                delay = 0.0
            elif t.startswith("+") and t[1:].isdigit():
                delay = 60.0 * int(t[1:])
            elif ":" in t:
                hh, _, mm = t.partition(":")
                if hh.isdigit() and mm.isdigit():
                    now = now or datetime.now()
                    at = now.replace(hour=int(hh) % 24, minute=int(mm) % 60, second=0, microsecond=0)
                    if at <= now:
                        at += timedelta(days=1)
                    delay = (at - now).total_seconds()
        return (action, delay)
    if name in ("poweroff", "halt"):
        return ("reboot" if "--reboot" in args else "stop", 0.0)
    if name == "reboot":
        return ("stop" if ("-p" in args or "--poweroff" in args) else "reboot", 0.0)
    if name == "systemctl":
        if any(a in ("poweroff", "halt") for a in args):
            return ("stop", 0.0)
        if any(a in ("reboot", "kexec") for a in args):
            return ("reboot", 0.0)
        return None
    if name == "telinit":
        if "0" in args:
            return ("stop", 0.0)
        if "6" in args:
            return ("reboot", 0.0)
    return None


class Reconciler:
    """Keeps the attached bed's hosts in step with moto's instances (see the module docstring)."""

    def __init__(self, bed: TestBed, log: TextIO, poll: float = POLL, boot: float = 0.0) -> None:
        self.bed = bed
        self.log_file = log
        self.poll = poll
        self.boot = boot  # seconds an instance takes to boot: its host comes up (or on) that long after it runs
        self.boot_file = bed.base_dir / BOOT_FILE  # FakeCloud.set_boot() changes it while moto runs
        self.booting: dict[str, float] = {}  # instance id -> when it was first seen up without a live host
        self.instances: dict[str, Instance] = {}  # last seen in moto
        self.busy: set[str] = set()
        self.failed: dict[str, float] = {}  # instance id -> when to try again
        self.scheduled: dict[str, tuple[float, str]] = {}  # instance id -> (monotonic deadline, action)
        self.started_at: dict[str, float] = {}
        self.public: dict[str, str] = {}  # instance id -> the public address its host has
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fakecloud-host")
        self._thread: Optional[threading.Thread] = None

    # ----- logging
    def log(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
        with contextlib.suppress(Exception):
            self.log_file.write(f"{stamp} {message}\n")
            self.log_file.flush()

    # ----- moto
    @staticmethod
    def _backends() -> list[tuple[str, str, Any]]:
        from moto.ec2.models import ec2_backends

        out = []
        for account, per_account in list(dict.items(ec2_backends)):
            for region, backend in list(dict.items(per_account)):
                out.append((account, region, backend))
        return out

    def snapshot(self) -> dict[str, Instance]:
        found: dict[str, Instance] = {}
        for account, region, backend in self._backends():
            for _ in range(3):
                try:
                    instances = list(backend.all_instances())
                    break
                except RuntimeError:  # a request changed moto's dicts meanwhile
                    time.sleep(0.005)
            else:
                continue
            for inst in instances:
                subnet_cidr = vpc_cidr = ""
                with contextlib.suppress(Exception):
                    subnet_cidr = backend.get_subnet(inst.subnet_id).cidr_block
                with contextlib.suppress(Exception):
                    vpc_cidr = backend.get_vpc(inst.vpc_id).cidr_block
                found[inst.id] = Instance(
                    id=inst.id, account=account, region=region, state=inst.state, address=inst.private_ip or "",
                    subnet_cidr=subnet_cidr, vpc_cidr=vpc_cidr,
                    shutdown_behavior=getattr(inst, "instance_initiated_shutdown_behavior", None) or "stop",
                    user_data=decode_user_data(getattr(inst, "user_data", None)),
                    public_address=getattr(inst, "public_ip", None) or "")
        return found

    def _backend_of(self, instance_id: str) -> Optional[Any]:
        inst = self.instances.get(instance_id)
        if inst is None:
            return None
        from moto.ec2.models import ec2_backends

        return ec2_backends[inst.account][inst.region]

    # ----- the loop
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fakecloud-reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._pool.shutdown(wait=True)

    def _run(self) -> None:
        self.log(f"reconciler up: bridge {self.bed.bridge} ({self.bed.bridge_address}), hosts in {self.bed.base_dir}")
        while not self._stop.wait(self.poll):
            try:
                self.tick()
            except Exception:
                self.log("reconciler: " + traceback.format_exc())

    def hosts(self) -> dict[str, Host]:
        with self.bed._state_lock:
            return {h.name: h for h in self.bed.hosts}

    def tick(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.boot = float(self.boot_file.read_text())
        snap = self.snapshot()
        now = time.monotonic()
        with self._lock:
            self.instances.update(snap)
            hosts = self.hosts()
            for iid in set(snap) | set(hosts):
                if iid in self.busy:
                    continue
                inst, host = snap.get(iid), hosts.get(iid)
                job = None
                if inst is None or inst.state in ("shutting-down", "terminated"):
                    if host is not None:
                        job = self._remove
                    else:
                        self.scheduled.pop(iid, None)
                elif inst.state in UP_STATES:
                    booted = now - self.booting.setdefault(iid, now) >= self.boot
                    if host is None:
                        if self.failed.get(iid, 0.0) <= now and inst.address and booted:
                            job = self._create
                    elif not host.powered_on:
                        if booted:
                            job = self._power_on
                    else:
                        self.booting.pop(iid, None)
                elif inst.state in DOWN_STATES and host is not None and host.powered_on:
                    job = self._power_off
                if job is None and iid in self.scheduled and self.scheduled[iid][0] <= now:
                    job = self._scheduled
                if job is None and host is not None and inst is not None and \
                        self.public.get(iid, "") != inst.public_address and \
                        (host.powered_on or not inst.public_address):
                    job = self._sync_public
                if inst is None or inst.state not in UP_STATES:
                    self.booting.pop(iid, None)
                if job is not None:
                    self.busy.add(iid)
                    self._pool.submit(self._job, job, iid)
            for iid in [i for i in self.instances if i not in snap]:
                del self.instances[iid]

    def _job(self, job: Any, iid: str) -> None:
        try:
            job(iid)
        except Exception:
            self.log(f"{iid}: {job.__name__} failed: " + traceback.format_exc())
        finally:
            with self._lock:
                self.busy.discard(iid)

    # ----- jobs
    def _create(self, iid: str) -> None:
        inst = self.instances[iid]
        t0 = time.monotonic()
        subnet = ipaddress.ip_network(inst.subnet_cidr) if inst.subnet_cidr else ipaddress.ip_network(
            f"{inst.address}/32")
        routes = [inst.vpc_cidr] if inst.vpc_cidr and inst.vpc_cidr != str(subnet) else []
        try:
            self.bed.add_bridge_route(str(subnet))
        except TestBedError as exc:
            self.log(f"{iid}: this machine cannot reach {inst.address}: {exc}")
        try:
            host = self.bed.add_host(
                iid, inst.address, prefix_len=subnet.prefixlen, routes=routes,
                hostname="ip-" + inst.address.replace(".", "-"), timeout=BOOT_TIMEOUT,
                host_class=lambda *a: ImageHost(*a, image=image_path(), user_data=inst.user_data, instance_id=iid))
        except TestBedError as exc:
            self.failed[iid] = time.monotonic() + RETRY_AFTER
            self.log(f"{iid}: no host for the instance at {inst.address}: {exc}")
            self._drop_unused_routes()
            return
        self.failed.pop(iid, None)
        host.on_event(self._on_event)
        self._set_public(iid, host, inst.public_address)
        self.log(f"{iid}: host up at {inst.address}, public {inst.public_address or 'none'} "
                 f"(account {inst.account}, {inst.region}, subnet {subnet}) in {time.monotonic() - t0:.2f}s; "
                 f"cloud-init: {boot_times(host.dir)}")
        # the state may have moved on meanwhile: the next tick sees it

    def _remove(self, iid: str) -> None:
        host = self.hosts().get(iid)
        self.scheduled.pop(iid, None)
        if host is None:
            return
        self.public.pop(iid, None)
        self.bed.remove_host(host)
        self._drop_unused_routes()
        self.log(f"{iid}: instance terminated, host removed")

    def _drop_unused_routes(self) -> None:
        in_use = set()
        for h in self.hosts().values():
            with contextlib.suppress(ValueError):
                in_use.add(ipaddress.ip_interface(f"{h.address}/{h.prefix_len}").network)
        in_use.update(ipaddress.ip_network(f"{a}/32") for a in list(self.public.values()))
        for cidr in list(self.bed.bridge_routes):
            if ipaddress.ip_network(cidr) not in in_use:
                self.bed.remove_bridge_route(cidr)

    def _power_off(self, iid: str) -> None:
        host = self.hosts().get(iid)
        self.scheduled.pop(iid, None)
        if host is None or not host.powered_on:
            return
        self._set_public(iid, host, "")  # a stopped instance has no public address
        host.power_off()
        self.bed._save_state()
        self.log(f"{iid}: instance stopped, host powered off")

    def _power_on(self, iid: str) -> None:
        host = self.hosts().get(iid)
        if host is None or host.powered_on:
            return
        host.power_on()
        self._set_public(iid, host, self.instances[iid].public_address)
        self.bed._save_state()
        self.log(f"{iid}: instance running again, host powered on")

    def _sync_public(self, iid: str) -> None:
        host, inst = self.hosts().get(iid), self.instances.get(iid)
        if host is not None and inst is not None:
            self._set_public(iid, host, inst.public_address if host.powered_on else "")

    def _set_public(self, iid: str, host: Host, address: str) -> None:
        """Give the host the instance's public address, which only this machine reaches (the operator's side: the
        other instances have no route to the public range), or take it away ("")."""
        old = self.public.get(iid, "")
        if old == address:
            return
        if old:
            self.bed.remove_host_address(host, old)
            self.public.pop(iid, None)
        if not address:
            return
        self.public[iid] = address  # before its route exists, so that _drop_unused_routes keeps it
        if not ipaddress.ip_address(address).is_private:
            self.log(f"{iid}: moto gave it the public address {address}, outside the fake cloud's range: "
                     "not given to its host")
            return
        try:
            self.bed.add_host_address(host, address)
        except TestBedError as exc:
            self.log(f"{iid}: this machine cannot reach its public address {address}: {exc}")
        else:
            self.log(f"{iid}: public address {address}")

    def _scheduled(self, iid: str) -> None:
        _, action = self.scheduled.pop(iid, (0.0, ""))
        if action:
            self._power_command(iid, action)

    # ----- the host's own power commands
    def _on_event(self, host: Host, cmd: str) -> None:
        what = power_action(cmd)
        if what is None:
            return
        action, delay = what
        iid = host.name
        self.log(f"{iid}: the host ran {cmd!r}")
        with self._lock:
            if action == "cancel":
                self.scheduled.pop(iid, None)
                return
            if delay > 0:
                self.scheduled[iid] = (time.monotonic() + delay, action)
                return
        self._power_command(iid, action)

    def _power_command(self, iid: str, action: str) -> None:
        backend = self._backend_of(iid)
        inst = self.instances.get(iid)
        if backend is None or inst is None:
            return
        if action == "reboot":
            backend.reboot_instances([iid])
            self.log(f"{iid}: RebootInstances")
            with self._lock:
                if iid in self.busy:
                    return
                self.busy.add(iid)
            self._pool.submit(self._job, self._power_cycle, iid)
        elif inst.shutdown_behavior == "terminate":
            backend.terminate_instances([iid])
            self.log(f"{iid}: TerminateInstances (instance-initiated shutdown behavior: terminate)")
        else:
            backend.stop_instances([iid])
            self.log(f"{iid}: StopInstances")
        # the next tick sees the instance stopped (or terminated) and powers the host off (or removes it)

    def _power_cycle(self, iid: str) -> None:
        host = self.hosts().get(iid)
        if host is None:
            return
        host.power_off()
        host.power_on()
        self.bed._save_state()
        self.log(f"{iid}: host rebooted")


def start(bed_dir: Path, instances_dir: Path, log_path: Path, guard: Optional[str] = None,
          boot: float = 0.0, public: Optional[str] = None) -> Reconciler:
    """Attach a bed to the bridge of the bed in bed_dir (its record in instances_dir) and start reconciling.

    guard: the CIDR lit's stack gives its VPCs, made unreachable on this machine before moto answers: lit connects
    to an instance as soon as moto says it runs, and until its host is up (and routed to the bridge) no packet to
    its address may leave this machine by the default route. boot: seconds each instance takes to boot (0: its
    host is made as soon as the reconciler sees it; EC2 takes tens of seconds). public: the range moto's public
    addresses come from (motod.py), unreachable here too but for the /32 route of each host's public address (and
    refused if this machine uses it already)."""
    main_bed = TestBed.load(bed_dir)
    bed = TestBed.attach(main_bed, instances_dir)
    if guard:
        bed.add_unreachable_route(guard)
    if public:
        bed.add_unreachable_route(public)
    log = open(log_path, "a", buffering=1)  # open for the life of the process
    reconciler = Reconciler(bed, log, boot=boot)
    reconciler.start()
    return reconciler
