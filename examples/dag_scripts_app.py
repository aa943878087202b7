# A DAG of scripts: prepare -> fit -> check -> publish. prepare and fit are scripts traced inside their works
# (the globals named in `outputs` are published as Payloads and passed on); check is a plain work; publish is a
# script run as its own process. The seed's "Directed Acyclic Graph" next step, built from lit.components.
# Run it: lit run examples/dag_scripts_app.py   (or on a cluster: --cloud NAME; each step on its own machine)
import lit as L
from lit.components import PopenPythonScript, TracerPythonScript


class Check(L.LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.summary = ""

    def run(self, model: L.Payload) -> None:
        fitted = model.value
        if abs(fitted["a"] - 3) > 0.1 or abs(fitted["b"] - 1) > 0.3:
            raise ValueError(f"the fit is off: {fitted}")
        self.summary = f"y = {fitted['a']}x + {fitted['b']}"
        print(f"model {self.summary}: close to y = 3x + 1")


class DAG(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.prepare = TracerPythonScript("scripts/prepare.py", outputs=["rows"])
        self.fit = TracerPythonScript("scripts/fit.py", outputs=["model"])
        self.check = Check()
        self.publish = PopenPythonScript("scripts/publish.py")

    def run(self) -> None:
        self.prepare.run()
        if self.prepare.has_succeeded:
            self.fit.run(ROWS=self.prepare.rows)  # a Payload: the script gets its value as the global ROWS
        if self.fit.has_succeeded:
            self.check.run(self.fit.model)
        if self.check.has_succeeded and not self.publish.has_started:
            self.publish.script_args = [self.check.summary]
            self.publish.run()
        if self.publish.has_succeeded:
            self.stop("the DAG is done")


app = L.LightningApp(DAG())
