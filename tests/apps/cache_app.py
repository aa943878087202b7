# cache_calls: the same call twice; CACHE=1 returns the second at once, CACHE=0 runs it again.
import os

from litobs import emit

import lit as L


class Counted(L.LightningWork):
    def __init__(self, cache: bool) -> None:
        super().__init__(cache_calls=cache)
        self.runs = 0

    def run(self, x: int) -> None:
        self.runs += 1
        emit("run", x=x, runs=self.runs)


class CacheFlow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.counted = Counted(os.environ.get("CACHE") == "1")
        self.phase = 0

    def run(self) -> None:
        if self.phase == 0:
            self.counted.run(x=1)
            self.phase = 1
        if self.phase == 1:
            self.counted.run(x=1)  # the same arguments again
            emit("second_call_returned", runs=self.counted.runs)
            self.phase = 2
        if self.phase == 2:
            self.counted.run(x=2)
            self.phase = 3
        self.stop(f"runs={self.counted.runs}")


app = L.LightningApp(CacheFlow())
