# State both ways: flow -> work before each call, work -> flow while the work runs (and in place at the end).
import time

from litobs import emit

import lit as L


class Worker(L.LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.config = "init"
        self.progress = 0
        self.items = []
        self.table = {}

    def run(self, step: int) -> None:
        emit("work_call", step=step, config=self.config, progress=self.progress)
        if step == 1:
            for i in range(1, 6):
                self.progress = i
                emit("work_progress", value=i)
                time.sleep(0.15)
            self.items.append("a")  # in place: no assignment
            self.items.append("b")
            self.table["k"] = "v"
        emit("work_end", step=step)


class Knob(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(parallel=True)
        self.knob = "init"

    def run(self, step: int) -> None:
        emit("knob_call", step=step, knob=self.knob)
        time.sleep(0.5)
        emit("knob_end", step=step, knob=self.knob)


class StateFlow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.worker = Worker()
        self.knob = Knob()
        self.observed = []
        self.phase = 0
        self.wrote = False

    def run(self) -> None:
        progress = self.worker.progress
        if progress and (not self.observed or self.observed[-1] != progress):
            self.observed.append(progress)
            emit("flow_saw", value=progress, stage=self.worker.status.stage)
        if self.phase == 0:
            self.worker.config = "set-in-run-before-first-call"  # only this process knows it
            self.phase = 1
        if self.phase == 1:
            self.worker.run(1)  # blocking: the rest runs once the call succeeded
            emit("after_call1", items=self.worker.items, table=self.worker.table,
                 progress=self.worker.progress, observed=list(self.observed))
            self.worker.config = "set-between-calls"
            self.phase = 2
        if self.phase == 2:
            self.worker.run(2)
            self.phase = 3
        if self.phase == 3:
            self.knob.run(1)  # parallel: returns at once
            if self.knob.is_running and not self.wrote:
                self.knob.knob = "written-while-running"
                self.wrote = True
                emit("flow_wrote_knob")
            if self.knob.has_succeeded:
                self.phase = 4
        if self.phase == 4:
            self.knob.run(2)
            if self.knob.has_succeeded:
                self.stop("state done")


app = L.LightningApp(StateFlow())
