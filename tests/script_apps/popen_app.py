# PopenPythonScript: scripts/count.py with arguments and env; EXIT_CODE (in the environment) makes it fail.
import os

import lit as L
from lit.components import PopenPythonScript


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.count = PopenPythonScript("scripts/count.py", script_args="--a 1",
                                       env={"GREETING": "hi", "EXIT_CODE": os.environ.get("EXIT_CODE", "0")})

    def run(self):
        self.count.run()
        if self.count.has_succeeded:
            self.stop(f"exit code {self.count.exit_code}")


app = L.LightningApp(Flow())
