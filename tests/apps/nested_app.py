# A child flow creates a work inside run(); the flow changes it in place and adds an attribute before the
# first call; the work creates an attribute inside run().
from litobs import emit

import lit as L


class Tagged(L.LightningWork):
    def __init__(self, tag: str, compute: str = "cpu") -> None:
        super().__init__(cloud_compute=L.CloudCompute(compute))
        self.tag = tag
        self.items = ["from-init"]

    def run(self, n: int) -> None:
        emit("work_saw", tag=self.tag, items=self.items, extra=getattr(self, "extra", None),
             compute=self.cloud_compute.name)
        self.created_in_run = f"{self.tag}-{n}"


class Child(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.done = False

    def run(self) -> None:
        if not hasattr(self, "dyn"):
            self.dyn = Tagged("nested", compute="gpu")
            self.dyn.items.append("from-flow")  # in place, by the flow, before the first call
            self.dyn.extra = {"k": 1}  # a new attribute, set by the flow
        self.dyn.run(1)
        emit("flow_saw", created=self.dyn.created_in_run, items=self.dyn.items)
        self.done = True


class Root(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.child = Child()

    def run(self) -> None:
        self.child.run()
        if self.child.done:
            self.stop("nested ok")


app = L.LightningApp(Root())
