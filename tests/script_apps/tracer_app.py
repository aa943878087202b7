# TracerPythonScript: scripts/train.py traced (Trainer.fit's epochs set to 3 by the tracer), its best_score
# published as a Payload, params added to its arguments, DATA given as a global.
import os

import lit as L
from lit.components import Tracer, TracerPythonScript


class TracedTrain(TracerPythonScript):
    def configure_tracer(self):
        import trainer_lib  # the script's folder is on sys.path while the script runs, and already here

        tracer = Tracer()

        def more_epochs(trainer, data, epochs=None):
            return {"asked": epochs}, (data,), {"epochs": 3}

        def seen(trainer, result):
            print(f"fit returned {result}", flush=True)
            return {"result": result}, result

        tracer.add_traced(trainer_lib.Trainer, "fit", pre_fn=more_epochs, post_fn=seen)
        return tracer


class Report(L.LightningWork):
    def run(self, score):
        with open(os.environ["OBS"], "w") as fh:
            fh.write(str(score.value))


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.train = TracedTrain("scripts/train.py", outputs=["best_score"])
        self.report = Report()

    def run(self):
        self.train.run(params={"--lr": "0.5"}, DATA=[1, 2, 3])
        if self.train.has_succeeded:
            self.report.run(self.train.best_score)
        if self.report.has_succeeded:
            self.stop("trained")


app = L.LightningApp(Flow())
