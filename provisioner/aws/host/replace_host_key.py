"""Write a new ed25519 host key where the running sshd reads it, and make it reload (SIGHUP re-executes sshd; open
sessions stay). The sshd is found by its executable and its config by its command line, so this works on a stock
Ubuntu image and on any sshd started with -f.

lit sends this module to `python3 -` as root with a line `main(PRIVATE, PUBLIC)` appended: the key travels on stdin,
never in a command line other users could read.
"""

from __future__ import annotations

import os
import signal
import sys


def exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        stat = fh.read()
    return int(stat[stat.rfind(b")") + 2:].split()[1])


def listening_sshd() -> int:
    """The sshd that listens: the one whose parent is not an sshd (sessions are children of it)."""
    sshds = [int(e) for e in os.listdir("/proc") if e.isdigit() and os.path.basename(exe(int(e))) == "sshd"]
    listeners = [p for p in sshds if os.path.basename(exe(parent(p))) != "sshd"]
    if not listeners:
        sys.exit("no running sshd found")
    return min(listeners)


def ed25519_key_path(config: str) -> str:
    keys = []
    with open(config) as fh:
        for line in fh:
            words = line.split()
            if len(words) >= 2 and words[0].lower() == "hostkey":
                keys.append(words[1])
    return next((k for k in keys if "ed25519" in k), None) or "/etc/ssh/ssh_host_ed25519_key"


def main(private: str, public: str) -> None:
    pid = listening_sshd()
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        args = fh.read().decode(errors="replace").replace("\0", " ").split()
    config = args[args.index("-f") + 1] if "-f" in args[:-1] else "/etc/ssh/sshd_config"
    target = ed25519_key_path(config)
    tmp = target + ".lit-new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(private.strip() + "\n")
    os.replace(tmp, target)
    with open(target + ".pub", "w") as fh:
        fh.write(public.strip() + "\n")
    os.kill(pid, signal.SIGHUP)
    print(target)
