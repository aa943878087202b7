# Works created inside the flow's run(): in a structures.Dict, a structures.List and by setattr.
from litobs import emit

import lit as L


class Echo(L.LightningWork):
    def __init__(self, tag: str, times: int = 1) -> None:
        super().__init__(parallel=True, cloud_compute=L.CloudCompute("cpu"))
        self._secret = f"{tag.upper()}x{times}"  # private: made by the constructor only, never sent
        self.tag = tag
        self.done = False

    def run(self) -> None:
        emit("echo", tag=self.tag, secret=self._secret, name=self.name)
        print(f"echo {self.tag}")
        self.done = True


class DynamicFlow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.by_key = L.structures.Dict()
        self.in_list = L.structures.List()

    def run(self) -> None:
        for i in range(2):
            key = f"k{i}"
            if key not in self.by_key:
                self.by_key[key] = Echo(f"dict{i}", times=i + 1)
            self.by_key[key].run()
        if len(self.in_list) == 0:
            self.in_list.append(Echo("list0", 5))
        self.in_list[0].run()
        if not hasattr(self, "solo"):
            self.solo = Echo(tag="attr", times=7)
        self.solo.run()
        works = [*self.by_key.values(), self.in_list[0], self.solo]
        if all(w.has_succeeded for w in works):
            emit("all_done", names=[w.name for w in works], done=[w.done for w in works])
            self.stop("dynamic done")


app = L.LightningApp(DynamicFlow())
