# Call arguments JSON cannot carry (bytes, a dataclass of this app, a set, a dict with int keys) reach the work as
# the same values, as in Lightning. cache_calls: the same arguments on every tick run once; other bytes run again.
# OBS (a file) gets what each call received.
import dataclasses
import json
import os

import lit as L


@dataclasses.dataclass
class Config:
    lr: float
    layers: tuple


ARGS = (bytes(range(256)), Config(0.1, (2, 3)), {"a", "b"}, {1: "one", 2: "two"})


class Echo(L.LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=L.CloudCompute("cpu"))
        self.got = []

    def run(self, blob, config, tags, table):
        self.got = [*self.got, {
            "blob": blob.hex(), "blob_type": type(blob).__name__,
            "config_type": f"{type(config).__module__}.{type(config).__qualname__}",
            "lr": config.lr, "layers": list(config.layers), "layers_type": type(config.layers).__name__,
            "tags": sorted(tags), "tags_type": type(tags).__name__,
            "table": {str(k): v for k, v in table.items()}, "key_types": sorted({type(k).__name__ for k in table}),
        }]
        print(f"got {len(blob)} bytes and a {type(config).__name__}", flush=True)


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.echo = Echo()

    def run(self):
        self.echo.run(*ARGS)  # every tick: run once, then cached
        if self.echo.has_succeeded:
            self.echo.run(b"other bytes", *ARGS[1:])
        if len(self.echo.got) == 2 and self.echo.has_succeeded:
            with open(os.environ["OBS"], "w") as fh:
                json.dump(self.echo.got, fh)
            self.stop("both calls done")


app = L.LightningApp(Flow())
