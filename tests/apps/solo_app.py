# A single work as the whole app.
from litobs import emit

import lit as L


class Solo(L.LightningWork):
    def run(self) -> None:
        emit("solo_run")
        print("solo ran")


app = L.LightningApp(Solo())
