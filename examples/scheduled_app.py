# A scheduled app: `self.schedule()` re-runs a work on cron times. This one fires every 2 seconds
# (6-field cron, seconds last) and stops itself after three runs; "hourly" or "0 9 * * 1-5" work the same.
import datetime

import lit as L


class Snapshot(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(cache_calls=False)
        self.taken = 0

    def run(self, when: str) -> None:
        self.taken += 1
        print(f"snapshot {self.taken} at {when}")


class Nightly(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.snapshot = Snapshot()

    def run(self) -> None:
        if self.snapshot.taken >= 3:
            self.stop("three snapshots taken")
        if self.schedule("* * * * * */2"):
            self.snapshot.run(datetime.datetime.now().strftime("%H:%M:%S"))


app = L.LightningApp(Nightly())
