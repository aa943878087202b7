# Non-JSON state, and arguments that are neither JSON nor picklable. MODE picks the case; "catch" records the
# errors and stops cleanly.
import os
import threading

from litobs import emit

import lit as L

MODE = os.environ.get("MODE", "catch")


class Holder:
    pass


class Worker(L.LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.value = 0
        self.items = []

    def run(self, payload=None) -> None:
        if MODE == "catch":
            try:
                self.bad_work_attr = {1, 2}
            except Exception as exc:
                emit("work_caught", type=type(exc).__name__, message=str(exc),
                     has_attr=hasattr(self, "bad_work_attr"))
        elif MODE == "work_attr":
            self.bad_work_attr = {1, 2}  # WORK-ATTR-LINE
        elif MODE == "inplace":
            self.items.append({1, 2})  # in place: no assignment to check at once
            self.value = 1
        elif MODE == "return":
            return 42
        emit("work_ran", payload=payload)


class NonJsonFlow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.worker = Worker()
        self.checked = False

    def run(self) -> None:
        if MODE == "catch" and not self.checked:
            self.checked = True
            for label, action in (
                ("flow_attr", lambda: setattr(self, "bad_flow_attr", {1, 2})),
                ("flow_obj", lambda: setattr(self, "bad_obj_attr", Holder())),
                ("work_attr_from_flow", lambda: setattr(self.worker, "bad_from_flow", {3})),
                ("kwarg", lambda: self.worker.run(payload=threading.Lock())),
            ):
                try:
                    action()
                except Exception as exc:
                    emit("flow_caught", label=label, type=type(exc).__name__, message=str(exc))
            emit("flow_attrs", has_flow_attr=hasattr(self, "bad_flow_attr"),
                 has_obj_attr=hasattr(self, "bad_obj_attr"), has_work_attr=hasattr(self.worker, "bad_from_flow"))
        if MODE == "catch":
            self.worker.run(payload=[1, 2])
            self.stop("caught all")
        elif MODE == "flow_attr":
            self.bad_flow_attr = {1, 2}  # FLOW-ATTR-LINE
        elif MODE == "arg":
            self.worker.run(threading.Lock())
        elif MODE == "kwarg":
            self.worker.run(payload=threading.Lock())
        else:
            self.worker.run()
            emit("flow_after", items=self.worker.items, value=self.worker.value)


app = L.LightningApp(NonJsonFlow())
