# Lightning's Payload example, as in its docs. Only the imports changed:
#   from lightning.app import LightningApp, LightningFlow, LightningWork  ->  from lit import ...
#   from lightning.app.storage import Payload                            ->  from lit.storage import Payload
from lit import LightningApp, LightningFlow, LightningWork
from lit.storage import Payload


class SourceWork(LightningWork):
    def __init__(self):
        super().__init__()
        self.value = None

    def run(self):
        self.value = Payload(42)


class DestinationWork(LightningWork):
    def run(self, payload):
        assert payload.value == 42
        print(f"payload.value = {payload.value}")


class RootFlow(LightningFlow):
    def __init__(self):
        super().__init__()
        self.src = SourceWork()
        self.dst = DestinationWork()

    def run(self):
        self.src.run()
        if self.src.value:
            self.dst.run(self.src.value)
            self.stop("done")


app = LightningApp(RootFlow())
