# The seed's hello app: two works, each on its own machine. `lit run examples/hello_app.py`
import lit as L


class LitWorker(L.LightningWork):
    def run(self, message):
        print(message)


class LitWorkflow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.work_A = LitWorker(cloud_compute=L.CloudCompute("cpu"))
        self.work_B = LitWorker(cloud_compute=L.CloudCompute("gpu"))

    def run(self):
        self.work_A.run("running code A on a CPU machine")
        self.work_B.run("running code B on a GPU machine")


app = L.LightningApp(LitWorkflow())
