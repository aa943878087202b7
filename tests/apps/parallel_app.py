# Blocking vs parallel calls. PARALLEL=1|0, SLEEP=seconds each work sleeps.
import os
import time

from litobs import emit

import lit as L

PARALLEL = os.environ.get("PARALLEL") == "1"
SLEEP = float(os.environ.get("SLEEP", "1"))


class Sleeper(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(parallel=PARALLEL)

    def run(self, label: str) -> None:
        emit("start", label=label)
        time.sleep(SLEEP)
        emit("end", label=label)


class ParallelFlow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.a = Sleeper()
        self.b = Sleeper()
        self.after = []

    def run(self) -> None:
        self.a.run("a")
        if "a" not in self.after:
            self.after.append("a")
            emit("after_a", a_stage=self.a.status.stage)
        self.b.run("b")
        if "b" not in self.after:
            self.after.append("b")
            emit("after_b", b_stage=self.b.status.stage)
        if self.a.has_succeeded and self.b.has_succeeded:
            self.stop("both done")


app = L.LightningApp(ParallelFlow())
