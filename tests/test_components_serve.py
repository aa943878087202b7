"""`lit.components.PythonServer` and its types: the types alone, the request handling on a real server on loopback
(in this process), then `lit run` of an app whose server work another work calls over HTTP: locally, and with the
server and its caller on two hosts of the SSH test bed."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import pytest

from lit.components import Category, Image, Number, PythonServer, Text
from lit.runtime.components.serve import ValidationError
from tests.conftest import REPO, LitRunner, pid_alive
from tests.support import LitCli, require, wait_for
from tests.testbed import TestBed, require_root_and_sshd, testbed_fixture


# -- helpers ------------------------------------------------------------------------------------------
@contextmanager
def serving(work: PythonServer) -> Iterator[tuple[str, int]]:
    """The work's real server, bound to a free loopback port and serving in a thread of this process."""
    work.setup()
    server = work._lit_make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[0], server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        server.endpoint.close()
        thread.join(5)


def request(address: tuple[str, int], method: str, path: str, body: Optional[bytes] = None,
            conn: Optional[http.client.HTTPConnection] = None) -> tuple[int, Any, bytes]:
    """(status, parsed JSON, raw body) of one request; on `conn` if given (kept open), else on a new connection."""
    own = conn is None
    if conn is None:
        conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw), raw
    finally:
        if own:
            conn.close()


def post(address: tuple[str, int], body: Any, conn: Optional[http.client.HTTPConnection] = None) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, answer, text = request(address, "POST", "/predict", raw, conn)
    assert text.count(b"\n") == 1 and text.endswith(b"\n"), text  # one JSON line, always
    return status, answer


class Echo(PythonServer):
    """Default types: {"payload": str} in, {"prediction": str} out."""

    def predict(self, request: Any) -> Any:
        if request.payload == "boom":
            raise RuntimeError("boom was asked for")
        if request.payload == "bad answer":
            return {"prediction": 42}
        if request.payload == "not a dict":
            return ["a", "list"]
        return {"prediction": request.payload.upper()}


# -- the types ----------------------------------------------------------------------------------------
def test_types_have_lightnings_fields_and_check_their_types() -> None:
    assert Text(text="hi").text == "hi" and Text().text is None  # Lightning's fields are all optional
    assert Image.model_validate({"image": "aGk="}).image == "aGk="
    assert Category.model_validate({"category": 3}).model_dump() == {"category": 3}
    assert Category.model_validate({"category": 3.0}).category == 3  # integral floats, as pydantic's lax mode
    assert Number.model_validate({"prediction": 0.25}).prediction == 0.25
    assert Number.model_validate({"prediction": 463}).model_dump() == {"prediction": 463}
    assert Text.model_validate({"text": "x", "extra": 1}).model_dump() == {"text": "x"}  # unknown keys ignored
    cases = [
        (Text, {"text": 3}, "text: expected a string, got integer 3"),
        (Category, {"category": "7"}, 'category: expected an integer, got string "7"'),
        (Category, {"category": 1.5}, "category: expected an integer, got number 1.5"),
        (Category, {"category": True}, "category: expected an integer, got boolean true"),
        (Number, {"prediction": [1]}, "prediction: expected a number, got array"),
        (Image, {"image": {"b64": ""}}, "image: expected a string, got object"),
        (Text, ["text"], "expected a JSON object, got array"),
    ]
    for kind, data, message in cases:
        with pytest.raises(ValidationError) as info:
            kind.model_validate(data)
        assert str(info.value) == message
    assert Text(text="a") == Text(text="a") != Text(text="b")
    assert repr(Category(category=2)) == "Category(category=2)"
    assert Number.model_json_schema()["properties"]["prediction"] == {"anyOf": [{"type": "number"}, {"type": "null"}]}


def test_sample_data_and_code_samples() -> None:
    png = base64.b64decode(Image.get_sample_data()["image"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in png  # a real image, made without a download
    assert Category.get_sample_data() == {"category": 463}
    assert Number.get_sample_data() == {"prediction": 463}
    assert Text.get_sample_data() == {"text": "A portrait of a person looking away from the camera"}
    url = "http://10.0.0.5:7777/predict"
    for kind in (Image, Text):
        code = kind.request_code_sample(url)
        assert repr(url) in code
        compile(code, f"<{kind.__name__} sample>", "exec")

    class Pictures(PythonServer):
        def predict(self, request: Any) -> Any:
            return {"image": request.image}

    sample = Pictures(input_type=Image, output_type=Image).get_code_sample(url)
    assert sample is not None and "b64decode" in sample
    compile(sample, "<sample>", "exec")
    assert Pictures(input_type=Image, output_type=Category).get_code_sample(url) is not None
    assert Echo().get_code_sample(url) is None  # the default types have no samples, as in Lightning
    assert PythonServer._get_sample_dict_from_datatype(Echo().configure_input_type()) == {"payload": "data string"}


def test_constructor_is_lightnings() -> None:
    with pytest.raises(TypeError, match="abstract"):
        PythonServer()  # type: ignore[abstract]
    work = Echo(port=8765)
    assert work.parallel and work.port == 8765 and work.ready is False
    assert work.configure_input_type().__name__ == "_DefaultInputData"
    assert work.configure_output_type().__name__ == "_DefaultOutputData"
    with pytest.raises(TypeError, match="input_type must be a pydantic BaseModel class"):
        Echo(input_type=dict)
    with pytest.raises(TypeError, match="output_type must be"):
        Echo(output_type=Text())  # an instance, not a class
    with pytest.raises(TypeError, match="always runs in parallel"):
        Echo(parallel=False)


# -- the request handling, on a real server -----------------------------------------------------------
def test_predict_round_trip_and_keep_alive() -> None:
    with serving(Echo()) as address:
        assert post(address, {"payload": "hello"}) == (200, {"prediction": "HELLO"})
        conn = http.client.HTTPConnection(*address, timeout=10)
        try:  # one connection, several requests: HTTP/1.1 keeps it open
            assert post(address, {"payload": "a"}, conn) == (200, {"prediction": "A"})
            first = conn.sock
            assert post(address, {"payload": "b"}, conn) == (200, {"prediction": "B"})
            assert conn.sock is first
        finally:
            conn.close()


def test_bad_input_is_a_422_with_one_line_saying_what_was_wrong() -> None:
    with serving(Echo()) as address:
        cases = [
            ({}, "payload: field required"),
            ({"payload": None}, "payload: may not be null"),
            ({"payload": 12}, "payload: expected a string, got integer 12"),
            ([1, 2], "the body must be a JSON object, got array"),
            (b"{not json", "the body is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
                           "(char 1)"),
            (b"", "the body is not JSON: Expecting value: line 1 column 1 (char 0)"),
        ]
        for body, detail in cases:
            assert post(address, body) == (422, {"detail": detail}), body
        assert post(address, {"payload": "still fine"}) == (200, {"prediction": "STILL FINE"})


def test_predict_raising_is_a_500_and_the_server_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    with serving(Echo()) as address:
        conn = http.client.HTTPConnection(*address, timeout=10)
        try:
            assert post(address, {"payload": "boom"}, conn) == (500, {"detail": "RuntimeError: boom was asked for"})
            assert post(address, {"payload": "after"}, conn) == (200, {"prediction": "AFTER"})  # same connection
        finally:
            conn.close()
        status, answer = post(address, {"payload": "bad answer"})
        assert status == 500
        assert answer["detail"] == ("Echo.predict() returned an answer that does not fit _DefaultOutputData: "
                                    "prediction: expected a string, got integer 42")
        status, answer = post(address, {"payload": "not a dict"})
        assert status == 500 and answer["detail"].endswith(": expected a dict or _DefaultOutputData, got array")
        assert post(address, {"payload": "ok"}) == (200, {"prediction": "OK"})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Echo.predict() raised (HTTP 500)" in logged and "RuntimeError: boom was asked for" in logged
    assert "runtime/components/serve.py" not in logged  # the user's frames only


def test_other_routes_say_what_is_served() -> None:
    class Classifier(PythonServer):
        def predict(self, request: Any) -> Any:
            return Category(category=len(request.text or ""))  # an output_type instance works as well as a dict

    with serving(Classifier(input_type=Text, output_type=Category)) as address:
        assert request(address, "GET", "/healthz")[:2] == (200, {"ready": True})
        status, answer, _ = request(address, "GET", "/")
        assert status == 200 and answer["name"] == "Classifier"
        assert answer["routes"] == ["GET /", "GET /healthz", "POST /predict"]
        assert set(answer["input"]["properties"]) == {"text"} and set(answer["output"]["properties"]) == {"category"}
        status, answer, _ = request(address, "GET", "/predict")
        assert status == 405 and "use POST /predict" in answer["detail"]
        status, answer, _ = request(address, "GET", "/docs")
        assert status == 404 and "POST /predict" in answer["detail"]
        status, _, _ = request(address, "POST", "/elsewhere", b"{}")
        assert status == 404
        assert post(address, {"text": "four"}) == (200, {"category": 4})
        assert post(address, {}) == (200, {"category": 0})  # Text's field is optional, as in Lightning


def test_requests_are_served_concurrently_and_async_predict_works() -> None:
    barrier = threading.Barrier(3, timeout=10)

    class Waits(PythonServer):
        def predict(self, request: Any) -> Any:
            barrier.wait()  # returns only once 3 requests are inside predict() at the same time
            return {"prediction": request.payload}

    with serving(Waits()) as address:
        results: list[tuple[int, Any]] = []
        threads = [threading.Thread(target=lambda i=i: results.append(post(address, {"payload": str(i)})))
                   for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        assert sorted(results, key=str) == [(200, {"prediction": str(i)}) for i in range(3)]

    class Async(PythonServer):
        async def predict(self, request: Any) -> Any:
            import asyncio

            await asyncio.sleep(0.01)
            if request.payload == "boom":
                raise ValueError("async boom")
            return {"prediction": request.payload[::-1]}

    with serving(Async()) as address:
        assert post(address, {"payload": "abc"}) == (200, {"prediction": "cba"})
        assert post(address, {"payload": "boom"}) == (500, {"detail": "ValueError: async boom"})


def test_pydantic_models_as_input_and_output_types() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Point(pydantic.BaseModel):
        x: int
        y: int

    class Distance(pydantic.BaseModel):
        distance: float
        unit: str = "m"

    class Measure(PythonServer):
        def predict(self, request: Any) -> Any:
            assert isinstance(request, Point)
            if request.x < 0:
                return {"unit": "m"}  # distance missing: not an answer Distance accepts
            return Distance(distance=(request.x ** 2 + request.y ** 2) ** 0.5)

    with serving(Measure(input_type=Point, output_type=Distance)) as address:
        assert post(address, {"x": 3, "y": 4}) == (200, {"distance": 5.0, "unit": "m"})
        status, answer = post(address, {"x": "three", "y": 4})
        assert status == 422 and answer["detail"].startswith("x: Input should be a valid integer")
        status, answer = post(address, {"y": 4})
        assert status == 422 and answer["detail"] == "x: Field required"
        status, answer = post(address, {"x": -1, "y": 0})
        assert status == 500 and "distance: Field required" in answer["detail"]


# -- end to end: lit run --------------------------------------------------------------------------------
SERVE_APP = '''\
import http.client
import json
import os
import socket
import urllib.parse

import lit as L
from lit.app.components import Category, PythonServer, Text  # Lightning's import path, lit's package

BODIES = ['{"text": "four"}', '{"text": 4}', '{"text": "boom"}', '{"text": "again"}', "not json"]


def call(url, method="POST", path="/predict", body=None):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return [response.status, json.loads(response.read())]
    finally:
        conn.close()


class Lengths(PythonServer):
    def __init__(self):
        super().__init__(input_type=Text, output_type=Category, cloud_compute=L.CloudCompute("cpu"))
        self.served_on = ""
        self.pid = 0
        self.setups = 0

    def setup(self):
        self.served_on = socket.gethostname()
        self.pid = os.getpid()
        self.setups += 1

    def predict(self, request):
        if request.text == "boom":
            raise RuntimeError("boom was asked for")
        return {"category": len(request.text)}

    def on_exit(self):  # without super().on_exit(): the server closes its port all the same
        print("on_exit ran")


class Caller(L.LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=L.CloudCompute("cpu"))
        self.answers = []
        self.host_name = ""

    def run(self, url):
        self.host_name = socket.gethostname()
        self.answers = [call(url, body=body) for body in BODIES]


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.server = Lengths()
        self.caller = Caller()
        self._seen = {}

    def run(self):
        if self._seen:  # the flow stopped the server (STOP_SERVER=1): wait until it is gone, then try it
            if not self.server.has_stopped:
                return
            try:
                self._seen["after_stop"] = call(self.server.url, "GET", "/healthz")
            except OSError as exc:
                self._seen["after_stop"] = type(exc).__name__
            self.finish()
            return
        self.server.run()
        if not self.server.ready:
            return
        self.caller.run(self.server.url)
        self._seen = {"url": self.server.url, "served_on": self.server.served_on, "setups": self.server.setups,
                      "pid": self.server.pid, "caller": self.caller.host_name, "answers": self.caller.answers,
                      "from_flow": call(self.server.url, body='{"text": "flow"}'),
                      "healthz": call(self.server.url, "GET", "/healthz")}
        if os.environ.get("STOP_SERVER"):
            self.server.stop()
        else:
            self.finish()

    def finish(self):
        self._seen["server_status"] = self.server.status.stage
        with open(os.environ["OBS"], "w") as fh:
            json.dump(self._seen, fh)
        self.stop("served")


app = L.LightningApp(Flow())
'''

EXPECTED_ANSWERS = [
    [200, {"category": 4}],
    [422, {"detail": "text: expected a string, got integer 4"}],
    [500, {"detail": "RuntimeError: boom was asked for"}],
    [200, {"category": 5}],  # the server went on serving after predict() raised
    [422, {"detail": "the body is not JSON: Expecting value: line 1 column 1 (char 0)"}],
]


def write_app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"  # alone in its folder: the folder is what ships to remote hosts
    folder.mkdir()
    path = folder / "serve_app.py"
    path.write_text(SERVE_APP)
    return path


def test_lit_run_a_server_work_called_by_another_work(lit: LitRunner, tmp_path: Path) -> None:
    obs = tmp_path / "obs.json"
    result = lit.run(write_app(tmp_path), env={"OBS": str(obs)}, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(obs.read_text())
    assert seen["url"].startswith("http://127.0.0.1:")
    assert seen["answers"] == EXPECTED_ANSWERS
    assert seen["from_flow"] == [200, {"category": 4}]
    assert seen["healthz"] == [200, {"ready": True}]
    assert seen["setups"] == 1
    # predict()'s traceback is in the server's log, once; the caller only got the one line
    assert result.stderr.count("Lengths.predict() raised (HTTP 500)") == 1
    assert "server | RuntimeError: boom was asked for" in result.stderr
    assert seen["server_status"] == "running"  # still serving when the app ended; the end took it down
    assert not pid_alive(seen["pid"])


def test_the_flow_stopping_the_server_ends_it(lit: LitRunner, tmp_path: Path) -> None:
    obs = tmp_path / "obs.json"
    result = lit.run(write_app(tmp_path), env={"OBS": str(obs), "STOP_SERVER": "1"}, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(obs.read_text())
    assert seen["answers"] == EXPECTED_ANSWERS
    assert seen["server_status"] == "stopped"
    assert seen["after_stop"] == "ConnectionRefusedError"  # the port is closed once the work is stopped
    assert "server | on_exit ran" in result.stdout
    assert not pid_alive(seen["pid"])


def test_model_api_example_runs_locally_and_ends_by_itself(lit: LitRunner) -> None:
    result = lit.run(REPO / "examples" / "model_api_app.py", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "client | 'what a wonderful, moving story' -> 1" in result.stdout
    assert "client | 'dull and far too long' -> 0" in result.stdout
    assert "client | '' -> ValueError: text is empty" in result.stdout
    assert "answered 4 requests: positive, negative, positive, error (ValueError: text is empty)" in (
        result.stdout + result.stderr)


# -- end to end on the SSH test bed: server and caller on two hosts -------------------------------------
@pytest.fixture(scope="module")
def bed() -> Iterator[TestBed]:
    require(require_root_and_sshd(), "the SSH test bed")
    yield from testbed_fixture(2)


@pytest.fixture
def cluster(tmp_path: Path, bed: TestBed) -> Iterator[LitCli]:
    """A cluster `tb` over the bed's hosts, in a private LIT_HOME."""
    runner = LitCli(tmp_path, {**os.environ, "LIT_HOME": str(tmp_path / "home")})
    hosts = ",".join(f"root@{h.address}" for h in bed.hosts)
    created = runner("create", "cluster", "tb", "--provider", "ssh", "--hosts", hosts, "--key", str(bed.key_path),
                     "--known-hosts", str(bed.known_hosts_path), "--orphan-timeout", "10")
    assert created.returncode == 0, created.stderr
    yield runner
    runner.cleanup()
    for host in bed.hosts:  # no agent of a test outlives it
        host.exec(["sh", "-c", "pkill -9 -f lit.runtime.agent; true"])


def test_server_on_one_host_called_from_another(cluster: LitCli, bed: TestBed, tmp_path: Path) -> None:
    obs = tmp_path / "obs.json"
    result = cluster("run", str(write_app(tmp_path)), "--cloud", "tb", "--env", f"OBS={obs}", timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(obs.read_text())
    addresses = {h.name: h.address.split("/")[0] for h in bed.hosts}
    server_host = seen["served_on"]
    assert seen["url"].startswith(f"http://{addresses[server_host]}:")  # the server's private address
    assert seen["caller"] in addresses and seen["caller"] != server_host  # another machine called it
    assert seen["answers"] == EXPECTED_ANSWERS
    assert seen["setups"] == 1
    # This machine reaches the bed's private addresses (the bridge), so the flow's own call got through too.
    assert seen["from_flow"] == [200, {"category": 4}]
    assert seen["healthz"] == [200, {"ready": True}]
    assert "server | RuntimeError: boom was asked for" in result.stderr
    # The server was still serving when the app ended: its process ended with the app, on its host.
    server = next(h for h in bed.hosts if h.name == server_host)
    wait_for(lambda: not [p for p, cmd in server.processes() if "lit.runtime.agent" in cmd], 10,
             "the server's agent to end on its host")
    port = int(seen["url"].rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((addresses[server_host], port), timeout=5).close()


def test_model_api_example_on_two_hosts(cluster: LitCli, bed: TestBed) -> None:
    result = cluster("run", str(REPO / "examples" / "model_api_app.py"), "--cloud", "tb", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "client | 'dull and far too long' -> 0" in result.stdout
    assert "answered 4 requests: positive, negative, positive, error (ValueError: text is empty)" in (
        result.stdout + result.stderr)
    # each work on its own host: the client reached the server at its private address
    hosts = {line.rsplit(" ", 1)[-1] for line in result.stderr.splitlines() if "| agent up on" in line}
    assert len(hosts) == 2, result.stderr
