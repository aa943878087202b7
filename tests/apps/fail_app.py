# Work failures. MODE: raise | handled | nostop | kill | kill_handled
import os
import signal
import time

from litobs import emit

import lit as L

MODE = os.environ.get("MODE", "raise")
HANDLED = MODE in ("handled", "nostop", "kill_handled")


class Boom(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(raise_exception=not HANDLED)

    def run(self, x: int) -> None:
        emit("boom_run", x=x)
        if MODE.startswith("kill"):
            os.kill(os.getpid(), signal.SIGKILL)
        raise ValueError(f"boom-from-work x={x}")  # RAISE-LINE


class Ticker(L.LightningWork):
    """Parallel: changes state a few times so that the flow ticks after the failure."""

    def __init__(self) -> None:
        super().__init__(parallel=True)
        self.n = 0

    def run(self, seconds: float) -> None:
        emit("ticker_pid")
        for _ in range(int(seconds / 0.1)):
            time.sleep(0.1)
            self.n += 1


class FailFlow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.boom = Boom()
        self.ticker = Ticker()
        self.after = 0

    def run(self) -> None:
        # raise: the ticker would run for 30 s; the failure must end the app long before that
        self.ticker.run(30.0 if MODE in ("raise", "kill") else 0.5)
        self.boom.run(1)  # blocking
        self.after += 1
        emit("after_boom", failed=self.boom.has_failed, stage=self.boom.status.stage,
             message=self.boom.status.message, ticker_n=self.ticker.n)
        if MODE in ("handled", "kill_handled") and self.ticker.has_succeeded:
            self.stop(f"handled: {self.boom.status.message}")


app = L.LightningApp(FailFlow())
