# A DAG: train -> evaluate -> report. Each step is a work; results travel as public attributes.
import random

import lit as L


class Train(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(cloud_compute=L.CloudCompute("gpu"))
        self.weights: list[float] = []

    def run(self, epochs: int) -> None:
        rng = random.Random(0)
        for epoch in range(epochs):
            self.weights = [round(rng.uniform(-1, 1), 4) for _ in range(4)]
            print(f"epoch {epoch + 1}/{epochs}: weights {self.weights}")


class Evaluate(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(cloud_compute=L.CloudCompute("cpu"))
        self.score = 0.0

    def run(self, weights: list[float]) -> None:
        self.score = round(sum(abs(w) for w in weights) / len(weights), 4)
        print(f"score {self.score}")


class Report(L.LightningWork):
    def run(self, score: float) -> None:
        verdict = "ship it" if score > 0.3 else "train longer"
        print(f"report: score={score} -> {verdict}")


class DAG(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.train = Train()
        self.evaluate = Evaluate()
        self.report = Report(cloud_compute=L.CloudCompute("cpu-small"))

    def run(self) -> None:
        self.train.run(epochs=3)
        self.evaluate.run(self.train.weights)
        self.report.run(self.evaluate.score)


app = L.LightningApp(DAG())
