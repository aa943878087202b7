# A GPU work, then a CPU work, then the GPU work again (new arguments): the GPU machine is stopped while the
# CPU work runs, and started again for the second call. TRAIN_COMPUTE and IDLE (seconds) change the first work's
# machine and its CloudCompute(idle_timeout=...).
import os
import time

import lit as L


class Train(L.LightningWork):
    def __init__(self) -> None:
        idle = os.environ.get("IDLE")
        super().__init__(cloud_compute=L.CloudCompute(os.environ.get("TRAIN_COMPUTE", "gpu"),
                                                      idle_timeout=float(idle) if idle else None))
        self.epochs_done = 0

    def run(self, epochs: int) -> None:
        self.epochs_done += epochs
        print(f"trained {epochs} epochs on {os.environ.get('CUDA_VISIBLE_DEVICES')!r}")


class Wait(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(cloud_compute=L.CloudCompute("cpu"))

    def run(self, seconds: float) -> None:
        print("cpu work waiting", flush=True)
        time.sleep(seconds)


class Flow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.train = Train()
        self.wait = Wait()

    def run(self) -> None:
        self.train.run(1)
        self.wait.run(float(os.environ.get("WAIT", "3")))
        if os.environ.get("TWICE"):
            self.train.run(2)


app = L.LightningApp(Flow())
