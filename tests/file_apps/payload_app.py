# A work publishes an L.Payload as an attribute; another receives it as a run() argument and reads .value.
import lit as L


class Trainer(L.LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.weights = None

    def run(self) -> None:
        self.weights = L.Payload({"weights": [0.5, -1.25, 3.0, 42.0]})


class Reader(L.LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.total = None

    def run(self, payload: L.Payload) -> None:
        value = payload.value
        self.total = sum(value["weights"])
        print(f"payload weights {value['weights']} total {self.total}")


class PayloadFlow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.trainer = Trainer()
        self.reader = Reader()

    def run(self) -> None:
        self.trainer.run()
        self.reader.run(self.trainer.weights)
        if self.reader.total is not None:
            self.stop(f"total {self.reader.total}")


app = L.LightningApp(PayloadFlow())
