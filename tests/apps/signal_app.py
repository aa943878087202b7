# Works that start a child process and then sleep (or hog the GIL, or kill themselves); the test
# signals lit meanwhile. MODE: sleep (two parallel works) | blocking (one blocking work) | hog | killed
import os
import re
import signal
import subprocess
import time

from litobs import emit

import lit as L

MODE = os.environ.get("MODE", "sleep")


class Sleeper(L.LightningWork):
    def __init__(self, parallel: bool = True) -> None:
        super().__init__(parallel=parallel)

    def run(self) -> None:
        child = subprocess.Popen(["sleep", "60"])
        emit("pids", work_pid=os.getpid(), child_pid=child.pid)
        if MODE == "hog":
            re.match(r"(a+)+$", "a" * 64 + "b")  # pure C: holds the GIL for a very long time
        elif MODE == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)


class SignalFlow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.a = Sleeper(parallel=MODE == "sleep")
        self.b = Sleeper()

    def run(self) -> None:
        self.a.run()
        if MODE == "sleep":
            self.b.run()


app = L.LightningApp(SignalFlow())
