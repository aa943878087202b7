"""The ssh provider: clusters of hosts the user already has. lit never powers these off."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from lit.runtime.compute import CloudCompute
from lit.runtime.errors import BadInput, InfrastructureError

from .. import store
from ..base import Cluster, Created, Lease, Machine, Options, Progress, Provider, check_cluster_name
from ..hostscript import source
from ..sshconn import SSH, fingerprint, host_entry, known_hosts_line, load_private_key, pinned_key, scan_host_key

MIN_PYTHON = (3, 9)
DEFAULT_KEY = "~/.ssh/id_ed25519"
PROBE = "lit.provisioner.ssh.host.probe"
LEASE = "lit.provisioner.ssh.host.lease"
STOP_AGENTS = "lit.provisioner.ssh.host.stop_agents"

_HOST = re.compile(
    r"^(?P<user>[A-Za-z_][A-Za-z0-9._-]*)@(?P<addr>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d+))?$"
)


def parse_hosts(text: str) -> list[tuple[str, str, int]]:
    """USER@ADDR[:PORT],... -> [(user, address, port)], or BadInput naming the bad entry."""
    out = []
    for entry in [part.strip() for part in text.split(",")]:
        match = _HOST.match(entry)
        if not entry or not match:
            raise BadInput(f"--hosts: {entry!r} is not USER@ADDR[:PORT] (e.g. ubuntu@10.0.0.5 or root@gpu-1:2222)")
        port = int(match["port"] or 22)
        if not 0 < port < 65536:
            raise BadInput(f"--hosts: {entry!r}: port {port} is out of range")
        address = match["addr"].strip("[]")
        out.append((match["user"], address, port))
    if len({(a, p) for _, a, p in out}) != len(out):
        raise BadInput("--hosts: a host is listed twice")
    return out


def parse_gpus(values: tuple[str, ...], addresses: set[str]) -> dict[str, int]:
    out = {}
    for value in values:
        address, sep, count = value.partition("=")
        if not sep or not count.isdigit():
            raise BadInput(f"--gpus {value!r}: expected ADDR=N (e.g. 10.0.0.5=2)")
        if address not in addresses:
            raise BadInput(f"--gpus {value!r}: {address} is not one of --hosts")
        out[address] = int(count)
    return out


class SSHProvider(Provider):
    name = "ssh"

    # -- create / delete --------------------------------------------------------------------------
    def create(self, name: str, options: Options, orphan_timeout: float, progress: Progress) -> Created:
        """Probe every host and pin its key; the pinned fingerprints are shown. Nothing is written unless every
        host answered."""
        hosts: Optional[str] = options.get("hosts")
        if not hosts:
            raise BadInput("--hosts is required for --provider ssh (USER@ADDR[:PORT],...)")
        key_path: Optional[str] = options.get("key")
        gpus: tuple[str, ...] = tuple(options.get("gpus") or ())
        known_hosts_file: Optional[str] = options.get("known_hosts")
        name = check_cluster_name(name)
        if store.exists(name):
            raise BadInput(f"cluster {name!r} already exists; delete it first with `lit delete cluster {name}`")
        parsed = parse_hosts(hosts)
        declared = parse_gpus(gpus, {address for _, address, _ in parsed})
        if orphan_timeout <= 0:
            raise BadInput(f"--orphan-timeout {orphan_timeout}: must be a positive number of seconds")
        key = str(Path(key_path or DEFAULT_KEY).expanduser().resolve())
        load_private_key(key)  # a missing or unreadable key is bad input, before any connection
        pinned_file = Path(known_hosts_file).expanduser() if known_hosts_file else None
        if pinned_file is not None and not pinned_file.is_file():
            raise BadInput(f"--known-hosts {known_hosts_file}: no such file")
        machines = [Machine(f"{user}@{address}:{port}", address, user, port) for user, address, port in parsed]

        def probe(machine: Machine) -> tuple[Machine, str, str]:
            progress(f"{machine.target}: connecting")
            if pinned_file is not None:
                host_key = pinned_key(pinned_file, machine)
                if host_key is None:
                    raise BadInput(f"--known-hosts {pinned_file}: no key for {host_entry(machine)}")
            else:
                host_key = scan_host_key(machine, key)
            line = known_hosts_line(machine, host_key)
            tmp = store.clusters_dir() / f".{name}.probe-{machine.address}-{machine.port}"
            store.write_private(tmp, line + "\n")
            try:
                with SSH(machine, key, tmp) as ssh:
                    code, out, err = ssh.run("python3 -", stdin=source(PROBE), timeout=60)
            finally:
                tmp.unlink(missing_ok=True)
            if code != 0:
                raise InfrastructureError(f"{machine.target}: python3 is missing or failed ({err.strip()[-200:]})")
            facts = json.loads(out.strip().splitlines()[-1])
            if tuple(facts["version"]) < MIN_PYTHON:
                raise InfrastructureError(f"{machine.target}: python3 is {'.'.join(map(str, facts['version']))}; "
                                          "lit needs 3.9 or newer on every host")
            found = Machine(machine.id, machine.address, machine.user, machine.port, int(facts["cpus"]),
                            int(facts["memory_mb"]), declared.get(machine.address, int(facts["gpus"])), "ready",
                            facts["python"])
            progress(f"{machine.target}: python {'.'.join(map(str, facts['version']))}, {found.cpus} CPUs, "
                     f"{found.memory_mb} MB, {found.gpus} GPUs")
            return found, line, f"{machine.target} {host_key.get_name()} {fingerprint(host_key)}"

        with ThreadPoolExecutor(max_workers=min(16, len(machines))) as pool:
            results = list(pool.map(probe, machines))
        cluster = Cluster(name, "ssh", tuple(r[0] for r in results), key, float(orphan_timeout),
                          datetime.now(timezone.utc).isoformat(timespec="seconds"))
        store.save(cluster, "".join(r[1] + "\n" for r in results))
        how = "pinned from " + known_hosts_file if known_hosts_file else "trusted on first use; check them"
        return Created(cluster, f"({len(cluster.machines)} hosts)",
                       (f"host keys ({how}):", *(f"  {r[2]}" for r in results)))

    def delete(self, cluster: Cluster, options: Options, progress: Progress) -> None:
        def stop(machine: Machine) -> None:
            try:
                with SSH(machine, cluster.key_path, store.known_hosts_path(cluster.name), timeout=8) as ssh:
                    _, out, _ = ssh.run("python3 -", stdin=source(STOP_AGENTS), timeout=30)
                progress(f"{machine.target}: stopped {out.strip() or 0} lit agents")
            except InfrastructureError as exc:
                progress(f"{machine.target}: could not stop lit agents: {exc}")

        with ThreadPoolExecutor(max_workers=min(16, len(cluster.machines))) as pool:
            list(pool.map(stop, cluster.machines))
        store.remove(cluster.name)

    def update(self, cluster: Cluster, options: Options, progress: Progress) -> str:
        raise BadInput(f"cluster {cluster.name!r} is an ssh cluster: its hosts are yours, and `lit update cluster` "
                       "has nothing to change (delete it and create it again to change its hosts)")

    # -- placing works ----------------------------------------------------------------------------
    def can_ever_place(self, cluster: Cluster, compute: CloudCompute) -> Optional[str]:
        need = compute.gpus
        if need and not any(m.gpus >= need for m in cluster.machines):
            most = max((m.gpus for m in cluster.machines), default=0)
            return (f"CloudCompute({compute.name!r}) needs {need} GPU(s) on one host; cluster {cluster.name!r} "
                    f"has at most {most} (declare GPUs the probe cannot see with --gpus ADDR=N)")
        return None

    def candidates(self, cluster: Cluster, compute: CloudCompute, load: dict[str, int]) -> list[Machine]:
        if compute.gpus:
            fit = [m for m in cluster.machines if m.gpus >= compute.gpus]
            return sorted(fit, key=lambda m: (load.get(m.id, 0), m.gpus))
        # CPU works: least loaded first, GPU hosts last (keep them free for GPU works).
        return sorted(cluster.machines, key=lambda m: (m.gpus > 0, load.get(m.id, 0) / max(m.cpus, 1)))

    def acquire(self, cluster: Cluster, compute: CloudCompute, machine: Machine, run_id: str, work: str,
                progress: Progress, app: str = "", made: Optional[Callable[[Lease], None]] = None,
                cancelled: Optional[Callable[[], bool]] = None) -> Optional[Lease]:
        return Lease(cluster.name, machine)  # the user's host: nothing is made

    def claim(self, ssh: SSH, cluster: Cluster, compute: CloudCompute, lease: Lease, owner: str) -> Optional[Lease]:
        """On the host: lease the GPUs the work needs (None if they are taken by another work or run)."""
        if not compute.gpus:
            return lease
        out = ssh.check(f"python3 - {lease.machine.gpus} {compute.gpus} {owner}", "leasing a GPU",
                        stdin=source(LEASE))
        result = _last_json(out)
        if not result["gpus"]:
            return None
        return Lease(lease.cluster, lease.machine, tuple(result["gpus"]), result["base"])

    # idle_delay, release, terminate, poweroff_command: the base's defaults. Hosts belong to the user: agents stay
    # up between calls, the agent frees its GPU leases as it ends, and lit never powers a host off.


def _last_json(out: str) -> Any:
    return json.loads(out.strip().splitlines()[-1])
