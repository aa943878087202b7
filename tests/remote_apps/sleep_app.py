# One work that sleeps SLEEP seconds (publishing its pid first); COMPUTE picks its machine.
import os
import socket
import time

import lit as L


class Sleeper(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(cloud_compute=L.CloudCompute(os.environ.get("COMPUTE", "cpu")))
        self.pid = 0
        self.host_name = ""
        self.started = 0.0
        self.ended = 0.0
        self.gpus = ""

    def run(self) -> None:
        self.host_name = socket.gethostname()
        self.gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        self.started = time.time()
        self.pid = os.getpid()
        print(f"sleeping on {self.host_name} pid {self.pid}", flush=True)
        time.sleep(float(os.environ.get("SLEEP", "30")))
        self.ended = time.time()
        print("woke up")


class Flow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.sleeper = Sleeper()

    def run(self) -> None:
        self.sleeper.run()
        out = os.environ.get("OBS")
        if out:
            import json

            with open(out, "w") as fh:
                json.dump({"host": self.sleeper.host_name, "started": self.sleeper.started,
                           "ended": self.sleeper.ended, "gpus": self.sleeper.gpus}, fh)


app = L.LightningApp(Flow())
