"""The detached agent (what lit starts on a host) as lit's kill sees it: the pid it reports leads its own process
group, so `kill -9 -- -PID` ends the agent and whatever its work started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support import wait_for


def test_the_reported_pid_leads_its_own_process_group(tmp_path: Path) -> None:
    sock = tmp_path / "agents" / "a.sock"
    out = subprocess.run([sys.executable, "-m", "lit.runtime.agent", "detached", "--socket", str(sock)],
                         capture_output=True, text=True, timeout=30, cwd=tmp_path)
    words = out.stdout.split()
    assert out.returncode == 0 and words[0] == "ready", out
    pid = int(words[1])
    try:
        assert os.getpgid(pid) == pid
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)  # what lit runs on the host, by the group the agent leads
        except ProcessLookupError:
            os.kill(pid, signal.SIGKILL)  # no such group: end the agent alone, never leave it running
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2],
             10, "the agent's group to end")
