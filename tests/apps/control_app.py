# flow.stop() / flow.fail() / an exception in the flow. MODE: stop | fail | raise
import os

import lit as L

MODE = os.environ.get("MODE", "stop")


class Echo(L.LightningWork):
    def run(self) -> None:
        print("echo ran")


class ControlFlow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.echo = Echo()

    def run(self) -> None:
        self.echo.run()
        if MODE == "stop":
            self.stop("stopped on purpose 123")
        elif MODE == "fail":
            self.fail("failing on purpose 456")
        else:
            raise RuntimeError("flow exploded 789")  # FLOW-RAISE-LINE


app = L.LightningApp(ControlFlow())
