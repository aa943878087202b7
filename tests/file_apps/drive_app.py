# One Drive, three works running at once (parallel): each puts its own file, then each lists and gets another's,
# then one deletes (twice: the second time the file is gone). The flow writes what the works saw to $OBS (JSON).
import json
import os

import lit as L

NAMES = ("w0", "w1", "w2")


class Sharer(L.LightningWork):
    def __init__(self, me: str) -> None:
        super().__init__(parallel=True)
        self.me = me
        self.drive = L.Drive("lit://shared")
        self.phases: list = []
        self.listing: list = []
        self.got = ""
        self.final: list = []
        self.missing = ""

    def run(self, phase: str) -> None:
        if phase == "put":
            with open(f"{self.me}.txt", "w") as fh:
                fh.write(f"written by {self.me}")
            self.drive.put(f"{self.me}.txt")
            os.remove(f"{self.me}.txt")
            if self.me == "w0":  # a dot-file of the user's is a file like any other
                with open(".w0rc", "w") as fh:
                    fh.write("settings")
                self.drive.put(".w0rc")
        elif phase == "swap":
            self.listing = self.drive.list(".")
            other = NAMES[(NAMES.index(self.me) + 1) % len(NAMES)]
            self.drive.get(f"{other}.txt")
            with open(f"{other}.txt") as fh:
                self.got = fh.read()
        elif phase == "delete":
            self.drive.delete("w2.txt")
            self.final = self.drive.list()
            try:
                self.drive.delete("w2.txt")  # gone already
            except FileNotFoundError as exc:
                self.missing = type(exc).__name__
        self.phases = [*self.phases, phase]
        print(f"{self.me} did {phase}")


class Share(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.w0, self.w1, self.w2 = Sharer("w0"), Sharer("w1"), Sharer("w2")

    def run(self) -> None:
        works = [self.w0, self.w1, self.w2]
        for work in works:
            work.run("put")
        if not all("put" in w.phases for w in works):
            return
        for work in works:
            work.run("swap")
        if not all("swap" in w.phases for w in works):
            return
        self.w0.run("delete")
        if "delete" not in self.w0.phases:
            return
        seen = {w.me: {"listing": w.listing, "got": w.got} for w in works}
        seen["final"] = self.w0.final
        seen["missing"] = self.w0.missing
        with open(os.environ["OBS"], "w") as fh:
            json.dump(seen, fh)
        self.stop("shared")


app = L.LightningApp(Share())
