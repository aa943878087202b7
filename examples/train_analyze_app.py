# The seed's toy app: train a model on a GPU machine, analyze it on a separate CPU machine. The model file
# crosses machines as an L.Path; no transfer code. The "model" is a small linear fit in pure Python.
import json
import random

import lit as L


class Train(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(cloud_compute=L.CloudCompute("gpu"))
        self.model = None

    def run(self, samples: int) -> None:
        rng = random.Random(7)
        xs = [rng.uniform(-1, 1) for _ in range(samples)]
        ys = [3.0 * x + 0.5 + rng.gauss(0, 0.1) for x in xs]
        mean_x, mean_y = sum(xs) / samples, sum(ys) / samples
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
        with open("model.json", "w") as fh:
            json.dump({"slope": slope, "intercept": mean_y - slope * mean_x}, fh)
        self.model = L.Path("model.json")  # published: whoever receives it gets the file
        print(f"trained on {samples} samples: slope {slope:.3f}")


class Analyze(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(cloud_compute=L.CloudCompute("cpu"))
        self.error = None

    def run(self, model: L.Path) -> None:
        with open(model) as fh:  # present on this machine before run() starts
            params = json.load(fh)
        rng = random.Random(11)
        test = [(x, 3.0 * x + 0.5) for x in (rng.uniform(-1, 1) for _ in range(100))]
        self.error = round(sum(abs(params["slope"] * x + params["intercept"] - y) for x, y in test) / len(test), 4)
        print(f"mean absolute error on held-out data: {self.error}")


class TrainAnalyze(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.train = Train()
        self.analyze = Analyze()

    def run(self) -> None:
        self.train.run(samples=1000)
        self.analyze.run(self.train.model)
        if self.analyze.error is not None:
            self.stop(f"model error {self.analyze.error}")


app = L.LightningApp(TrainAnalyze())
