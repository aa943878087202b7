# A Lightning-style app whose flow and work define configure_layout (as most of Lightning's examples do): it runs
# without a warning; with the dashboard served, its tabs show (tests/test_ui.py), without it they are never asked for.
import lit as L
from lit.app.frontend import StaticWebFrontend


class Server(L.LightningWork):
    def configure_layout(self):
        return StaticWebFrontend("ui/dist")

    def run(self):
        print("served", flush=True)


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.server = Server()

    def run(self):
        self.server.run()
        if self.server.has_succeeded:
            self.stop("ran with a layout")

    def configure_layout(self):
        return [{"name": "Server", "content": self.server}, {"name": "Docs", "content": "https://example.com"}]


app = L.LightningApp(Flow())
