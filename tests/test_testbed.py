"""Tests of the multi-host test bed (tests/testbed.py): real sshd in namespaces.

Needs root and `bash tests/testbed_setup.sh`; skipped otherwise, except under
CI=true, where a missing prerequisite is a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import require, wait_for
from tests.testbed import Host, TestBed, require_root_and_sshd, testbed_fixture

REPO = Path(__file__).resolve().parent.parent


def _need_bed() -> None:
    require(require_root_and_sshd(), "the test bed")


@pytest.fixture(scope="module")
def bed() -> Iterator[TestBed]:
    _need_bed()
    yield from testbed_fixture(3)


def _alive(pid: int | None, start: int | None) -> bool:
    """pid still runs as the same process (not a zombie, not reused)."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0] not in ("Z", "X") and int(fields[19]) == start


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _resources(b: TestBed) -> tuple[set[str], list[str], list[tuple[int | None, int | None]]]:
    netns = {h.netns for h in b.hosts}
    links = [b.bridge, *[h.peer for h in b.hosts]]
    pids = []
    for h in b.hosts:
        pids += [(h.holder_pid, h.holder_start), (h.init_pid, h.init_start), (h.sshd_pid, h.sshd_start)]
    return netns, links, pids


def _assert_gone(netns: set[str], links: list[str], pids: list[tuple[int | None, int | None]]) -> None:
    assert not (netns & _netns_names())
    for n in netns:
        assert not Path(f"/run/netns/{n}").exists()
    for link in links:
        assert not Path(f"/sys/class/net/{link}").exists(), link
    for pid, start in pids:
        assert not _alive(pid, start), pid


def test_ssh_strict_host_keys_and_own_address(bed: TestBed) -> None:
    assert len(bed.hosts) == 3
    assert len(bed.known_hosts_text().splitlines()) == 3
    assert bed.known_hosts_path.read_text() == bed.known_hosts_text()
    assert bed.key_path.exists()
    for h in bed.hosts:
        assert h.user == "root" and h.port == 22
        assert h.host_key_line.startswith(f"{h.address} ssh-ed25519 ")
        argv = h.ssh_argv()
        assert "StrictHostKeyChecking=yes" in argv and "BatchMode=yes" in argv
        p = h.ssh("hostname; hostname -I; ip -4 -o addr show dev eth0")
        assert p.returncode == 0, p.stderr
        lines = p.stdout.split("\n")
        assert lines[0] == h.name
        assert lines[1].split() == [h.address]
        assert f"inet {h.address}/24" in p.stdout
        for other in bed.hosts:
            if other is not h:
                assert other.address not in p.stdout
    # The ssh_config the bed writes works by host name.
    p = subprocess.run(
        ["ssh", "-F", str(bed.ssh_config_path), bed.hosts[2].name, "hostname"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0 and p.stdout.strip() == bed.hosts[2].name, p.stderr
    # Hosts reach each other (and the bridge address is the real machine).
    h1, h2 = bed.hosts[0], bed.hosts[1]
    p = h1.ssh(f"exec 3<>/dev/tcp/{h2.address}/22 && head -c 4 <&3")
    assert p.returncode == 0 and p.stdout == "SSH-", p.stderr


def test_tmp_and_root_are_private(bed: TestBed) -> None:
    h1, h2 = bed.hosts[0], bed.hosts[1]
    tok = f"lit-testbed-{secrets.token_hex(6)}"
    p = h1.ssh(f"echo {tok} > /tmp/{tok} && echo {tok} > /root/{tok} && cat /tmp/{tok} /root/{tok}")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [tok, tok]
    p = h2.ssh(f"ls /tmp/{tok} /root/{tok}")
    assert p.returncode != 0 and "No such file" in p.stderr
    assert not Path(f"/tmp/{tok}").exists()
    assert not Path(f"/root/{tok}").exists()
    # The rest of the machine's filesystem is read-only on the hosts.
    p = h1.ssh(f"touch /etc/{tok}")
    assert p.returncode != 0 and "Read-only" in p.stderr
    assert not Path(f"/etc/{tok}").exists()
    # Debian's python3 works on the host (pyenv under /root is hidden there).
    p = h1.ssh(f"{h1.python} -c 'import sys; print(sys.version_info >= (3, 9))'")
    assert p.returncode == 0 and p.stdout.strip() == "True", p.stderr


def test_sessions_cannot_escape_the_host(bed: TestBed) -> None:
    h = bed.hosts[0]
    for cmd in (
        "umount /root",
        "umount -l /tmp",
        "mount -o remount,rw /",
        "mount -t tmpfs x /mnt",
        f"ip route add default via {bed.bridge_address}",
        "ip link set eth0 down",
        "hostname other",
        "echo 1 > /proc/sys/net/ipv4/ip_forward",
    ):
        p = h.ssh(cmd)
        assert p.returncode != 0, (cmd, p.stdout, p.stderr)
    p = h.ssh("ip -4 route; hostname")
    assert "default" not in p.stdout and p.stdout.split()[-1] == h.name
    p = h.ssh("grep CapBnd /proc/self/status")
    bounding = int(p.stdout.split()[1], 16)
    assert not bounding & (1 << 21) and not bounding & (1 << 12)  # no SYS_ADMIN, NET_ADMIN


def test_shutdown_commands_are_recorded_not_run(bed: TestBed) -> None:
    h = bed.hosts[1]
    seen: list[str] = []
    got = threading.Event()

    def on_event(host: Host, cmd: str) -> None:
        seen.append(f"{host.name}: {cmd}")
        if cmd == "poweroff -f":
            got.set()

    h.on_event(on_event)
    before = len(h.events())
    p = h.ssh(
        "shutdown -h now; poweroff; systemctl poweroff; reboot; halt; "
        "/sbin/shutdown -r +1; /usr/bin/systemctl halt; echo still-here"
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "still-here"
    assert h.events()[before:] == [
        "shutdown -h now",
        "poweroff",
        "systemctl poweroff",
        "reboot",
        "halt",
        "shutdown -r +1",
        "systemctl halt",
    ]
    assert h.ssh("true").returncode == 0
    assert h.ssh("poweroff -f").returncode == 0
    assert got.wait(5), seen
    assert seen[-1] == f"{h.name}: poweroff -f"
    assert h.wait_for_event("poweroff -f", timeout=1) == "poweroff -f"
    for other in bed.hosts:
        if other is not h:
            assert "poweroff -f" not in other.events()


def test_on_poweroff_hook_can_stop_the_host(bed: TestBed) -> None:
    h = bed.hosts[2]
    calls: list[str] = []

    def stop_instance(host: Host, cmd: str) -> None:
        calls.append(cmd)
        host.power_off()

    cancel = h.on_poweroff(stop_instance)
    try:
        assert h.ssh("systemctl status ssh; shutdown -k now").returncode == 0
        p = h.ssh("nohup sleep 1000 >/dev/null 2>&1 </dev/null & shutdown -h now; sleep 20; echo not-stopped")
        assert "not-stopped" not in p.stdout  # the session died with the "machine"
        wait_for(lambda: not h.powered_on, 5, "the host to power off")
        assert calls == ["shutdown -h now"]
        assert not h.powered_on and not h.sshd_running()
        assert h.pids() == [h.init_pid]
        assert not h.tcp_reachable()
    finally:
        cancel()
        if not h.powered_on:
            h.power_on()
    assert h.ssh("pgrep -x sleep").returncode == 1  # nothing survived
    assert h.ssh("true").returncode == 0


def test_own_pid_namespace(bed: TestBed) -> None:
    h = bed.hosts[0]
    p = h.ssh("readlink /proc/self/ns/pid; ps -e --no-headers | wc -l; tr '\\0' ' ' < /proc/1/cmdline")
    assert p.returncode == 0, p.stderr
    ns, count, init_cmd = p.stdout.split("\n")[:3]
    assert ns.startswith("pid:[") and ns != os.readlink("/proc/self/ns/pid")
    assert ns == h.pid_namespace()
    assert ns != bed.hosts[1].pid_namespace()
    assert int(count) < 15
    assert "testbed-init.py" in init_cmd
    assert h.init_pid in h.pids()
    assert len(h.pids()) < 15


def test_no_default_route(bed: TestBed) -> None:
    for h in bed.hosts:
        p = h.ssh("ip -4 route; echo ---; ip -6 route 2>/dev/null")
        assert p.returncode == 0, p.stderr
        assert "default" not in p.stdout
        assert p.stdout.split("---")[0].split() == (
            f"{bed.subnet} dev eth0 proto kernel scope link src {h.address}".split()
        )
        # A route lookup only (no packet is sent): nothing outside the bed.
        q = h.exec(["ip", "route", "get", "192.0.2.1"])
        assert q.returncode != 0 and "unreachable" in q.stderr.lower()


def test_exec_runs_inside_the_host(bed: TestBed) -> None:
    h = bed.hosts[2]
    p = h.exec(["sh", "-c", "hostname; readlink /proc/self/ns/pid; ls -A /root | wc -l"], check=True)
    name, ns, n_root = p.stdout.split()
    assert name == h.name and ns == h.pid_namespace() and n_root == "0"
    p = h.ssh("nohup sleep 1000 >/dev/null 2>&1 </dev/null & echo started")
    assert p.returncode == 0 and p.stdout.strip() == "started", p.stderr
    assert any("sleep 1000" in cmd for _, cmd in h.processes())
    killed = h.kill_all()
    assert killed
    wait_for(lambda: not any("sleep 1000" in cmd for _, cmd in h.processes()), 5, "the killed processes to be gone")
    assert not any("sleep 1000" in cmd for _, cmd in h.processes())
    assert h.ssh("true").returncode == 0  # sshd listener was kept


def test_sshd_restart_keeps_background_process(bed: TestBed) -> None:
    h = bed.hosts[0]
    p = h.ssh("nohup sleep 1000 >/dev/null 2>&1 </dev/null & echo $!")
    assert p.returncode == 0, p.stderr
    pid = int(p.stdout.strip())
    h.stop_sshd()
    assert not h.sshd_running()
    assert not h.tcp_reachable(timeout=1)  # refused at once, not timed out
    assert h.exec(["kill", "-0", str(pid)]).returncode == 0
    h.start_sshd()
    assert h.sshd_running()
    p = h.ssh(f"kill -0 {pid} && tr '\\0' ' ' < /proc/{pid}/cmdline && kill {pid}")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "sleep 1000"


def test_changed_host_key_is_detected(bed: TestBed) -> None:
    h = bed.hosts[2]
    old = h.host_key_line
    try:
        new = h.rotate_host_key()
        assert new != old and new == h.host_key_line
        assert old in bed.known_hosts_path.read_text()
        p = h.ssh("true")
        assert p.returncode == 255
        assert "Host key verification failed" in p.stderr
        # The other hosts are unaffected.
        assert bed.hosts[0].ssh("true").returncode == 0
    finally:
        bed.refresh_known_hosts()
    assert new in bed.known_hosts_path.read_text()
    assert h.ssh("true").returncode == 0


def test_link_down_is_a_silent_partition(bed: TestBed) -> None:
    h = bed.hosts[1]
    assert h.tcp_reachable()
    h.link_down()
    try:
        with pytest.raises((socket.timeout, TimeoutError)):  # a timeout, not a refusal: dropped without a word
            socket.create_connection((h.address, 22), timeout=1.0).close()
        # From another host too.
        p = bed.hosts[0].ssh(f"timeout 1 bash -c 'exec 3<>/dev/tcp/{h.address}/22'; echo rc=$?")
        assert p.stdout.strip() == "rc=124", (p.stdout, p.stderr)
    finally:
        h.link_up()
    wait_for(h.tcp_reachable, 5, "the link to be up again")
    assert h.tcp_reachable()
    assert h.ssh("true").returncode == 0


def test_second_bed_coexists_and_down_removes_everything(bed: TestBed) -> None:
    other = TestBed.up(2)
    try:
        assert other.prefix != bed.prefix
        assert other.subnet != bed.subnet
        assert {h.address for h in other.hosts}.isdisjoint(h.address for h in bed.hosts)
        assert other.hosts[1].ssh("hostname -I").stdout.split() == [other.hosts[1].address]
        state = json.loads(other.state_path.read_text())
        assert set(state["netns"]) == {h.netns for h in other.hosts}
        assert other.bridge in state["links"]
        netns, links, pids = _resources(other)
        assert all(_alive(p, s) for p, s in pids)
        base = other.base_dir
    finally:
        other.down()
    _assert_gone(netns, links, pids)
    assert not base.exists()
    other.down()  # twice is fine
    assert bed.hosts[0].ssh("true").returncode == 0  # the first bed is untouched


def test_down_from_state_file_after_the_creator_is_gone(bed: TestBed, tmp_path: Path) -> None:
    d = tmp_path / "bed"
    p = subprocess.run(
        [sys.executable, "-m", "tests.testbed", "up", "1", "--dir", str(d)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert "root@10.213." in p.stdout and "known_hosts" in p.stdout
    crashed = TestBed.load(d)
    assert crashed.hosts[0].ssh("true").returncode == 0
    netns, links, pids = _resources(crashed)
    p = subprocess.run(
        [sys.executable, "-m", "tests.testbed", "down", "--dir", str(d)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    _assert_gone(netns, links, pids)
    assert not d.exists()
