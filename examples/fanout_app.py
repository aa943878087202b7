# A parallel fan-out: one work per trial of a sweep, created inside run(), all running at once.
import time

import lit as L


class Trial(L.LightningWork):
    def __init__(self, learning_rate: float) -> None:
        super().__init__(parallel=True, cloud_compute=L.CloudCompute("cpu"))
        self.learning_rate = learning_rate
        self.loss = None

    def run(self) -> None:
        time.sleep(0.5)
        self.loss = round((self.learning_rate - 0.03) ** 2, 6)
        print(f"lr={self.learning_rate} loss={self.loss}")


class Sweep(L.LightningFlow):
    def __init__(self, rates: list[float]) -> None:
        super().__init__()
        self.rates = rates
        self.trials = L.structures.Dict()
        self.best = None

    def run(self) -> None:
        for i, rate in enumerate(self.rates):
            key = f"trial{i}"
            if key not in self.trials:
                self.trials[key] = Trial(rate)  # a dynamic work: it starts at its first call
            self.trials[key].run()
        if self.best is None and all(t.has_succeeded for t in self.trials.values()):
            best = min(self.trials.values(), key=lambda t: t.loss)
            self.best = best.learning_rate
            self.stop(f"best learning rate: {self.best}")


app = L.LightningApp(Sweep([0.001, 0.003, 0.01, 0.03, 0.1, 0.3]))
