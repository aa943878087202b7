# Works write a relative file; each must run in its own working directory under the run dir.
import os

from litobs import emit

import lit as L


class Writer(L.LightningWork):
    def run(self) -> None:
        with open("out.txt", "w") as fh:
            fh.write(self.name)
        emit("cwd", name=self.name, cwd=os.getcwd())


class WorkdirFlow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.one = Writer()
        self.two = Writer()

    def run(self) -> None:
        self.one.run()
        self.two.run()


app = L.LightningApp(WorkdirFlow())
