# schedule(). MODE: two (two seconds-level schedules) | invalid | alias (PATTERN=hourly, ...)
import os
import time

from litobs import emit

import lit as L

MODE = os.environ.get("MODE", "two")


class Ticker(L.LightningWork):
    """Changes state every 0.1 s so the flow ticks often (schedule() must still fire once per event)."""

    def __init__(self) -> None:
        super().__init__(parallel=True)
        self.n = 0

    def run(self) -> None:
        for _ in range(100):
            time.sleep(0.1)
            self.n += 1


class ScheduleFlow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.ticker = Ticker()
        self.every_second = []
        self.every_two = []
        self.ticks = 0

    def run(self) -> None:
        self.ticks += 1
        now = time.time()
        if MODE == "invalid":
            self.schedule(os.environ.get("PATTERN", "every blue moon"))
            self.stop("the invalid pattern was accepted")
        if MODE == "alias":
            pattern = os.environ.get("PATTERN", "hourly")
            first = self.schedule(pattern)
            second = self.schedule(pattern, user_key="again")  # a second schedule: True on its first call
            emit("alias", pattern=pattern, first=first, second=second)
            self.stop("alias ok")
        self.ticker.run()
        if self.schedule("* * * * * */1"):
            self.every_second.append(now)
        if self.schedule("* * * * * */2"):
            self.every_two.append(now)
        if len(self.every_second) >= 3:
            emit("fires", every_second=self.every_second, every_two=self.every_two, ticks=self.ticks)
            self.stop("scheduled")


app = L.LightningApp(ScheduleFlow())
