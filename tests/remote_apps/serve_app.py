# One work serves HTTP on work.port; another, on another host, calls it at work.url.
import http.server
import json
import os
import socket
import threading
import urllib.request

import lit as L


class Server(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(parallel=True, cloud_compute=L.CloudCompute("cpu"))
        self.ready = False

    def run(self) -> None:
        host_name = socket.gethostname()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"served_by": host_name}).encode()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body)

        server = http.server.HTTPServer((self.host, self.port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.ready = True
        threading.Event().wait()


class Client(L.LightningWork):
    def __init__(self) -> None:
        super().__init__(cloud_compute=L.CloudCompute("cpu"))
        self.answer = {}
        self.host_name = ""

    def run(self, url: str) -> None:
        self.host_name = socket.gethostname()
        with urllib.request.urlopen(url, timeout=10) as response:
            self.answer = json.loads(response.read())


class Flow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.server = Server()
        self.client = Client()

    def run(self) -> None:
        self.server.run()
        if not self.server.ready:
            return
        self.client.run(self.server.url)
        with open(os.environ["OBS"], "w") as fh:
            json.dump({"url": self.server.url, "answer": self.client.answer, "client": self.client.host_name}, fh)
        self.stop("called")


app = L.LightningApp(Flow())
