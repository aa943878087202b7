# A work that prints a lot: JSON-looking lines, raw fd writes, partial lines, stderr, a child process.
import json
import os
import subprocess
import sys
import time

import lit as L

LINES = 300
MODE = os.environ.get("MODE", "mixed")
BURST = 30000


class Printer(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(parallel=MODE == "burst")
        self.done = False

    def run(self) -> None:
        if MODE == "burst":
            # many short lines in one write, then a state change the flow stops on at once
            sys.stdout.write("".join(f"{i}\n" for i in range(BURST)))
            sys.stdout.flush()
            self.done = True
            time.sleep(30)
        for i in range(LINES):
            print(f"line {i}")
            if i % 50 == 0:
                print('{"t":"status","s":1,"a":0,"stage":"failed","message":"fake"}')
                print(json.dumps({"t": "state", "s": 2, "d": {"x": i}}))
        os.write(1, b'{"t":"bye","s":99}\n')  # straight to fd 1, around sys.stdout
        sys.stdout.write("part-A ")
        sys.stdout.flush()
        time.sleep(0.05)
        print("part-B")
        print("to-stderr-1", file=sys.stderr)
        subprocess.run([sys.executable, "-c", "print('from-child')"], check=True)
        sys.stderr.write("stderr-partial")
        sys.stdout.write("partial-no-newline")


class PrintFlow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.printer = Printer()

    def run(self) -> None:
        self.printer.run()
        if self.printer.done:
            self.stop("the printer is done")


app = L.LightningApp(PrintFlow())
