# Each work reports the host it runs on; the flow checks state went both ways across hosts.
import json
import os
import socket
import time

import lit as L


class Where(L.LightningWork):
    def __init__(self, compute: str) -> None:
        super().__init__(cloud_compute=L.CloudCompute(compute))
        self.config = {}
        self.host_name = ""
        self.progress = []
        self.seen_config = {}

    def run(self, step: int) -> None:
        self.seen_config = dict(self.config)
        self.host_name = socket.gethostname()
        for i in range(3):
            self.progress = [*self.progress, i]
            time.sleep(0.2)
        print(f"host={self.host_name} cuda={os.environ.get('CUDA_VISIBLE_DEVICES')!r} ip={self.internal_ip}")


class Flow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.a = Where("cpu")
        self.b = Where("cpu")
        self.g = Where("gpu")
        self.observed = []

    def run(self) -> None:
        for name, work in (("a", self.a), ("b", self.b), ("g", self.g)):
            work.config = {"who": name}  # set before the first call: must reach the remote process
        for work in (self.a, self.b, self.g):
            if work.progress and work.progress not in self.observed:
                self.observed.append(list(work.progress))
        self.a.run(1)
        self.b.run(1)
        self.g.run(1)
        with open(os.environ["OBS"], "w") as fh:
            json.dump({name: {"host": w.host_name, "config": w.seen_config, "ip": w.internal_ip}
                       for name, w in (("a", self.a), ("b", self.b), ("g", self.g))} | {"observed": self.observed}, fh)
        self.stop("all three ran")


app = L.LightningApp(Flow())
