"""The run dashboard `lit run --ui` serves (lit.runtime.ui): its hub, its server's rules (token, loopback only,
gone after the run), and the page itself in headless Chromium (Debian's chromium and chromedriver, driven by
selenium): live statuses and logs without a reload, the log filter, a failed work's traceback.

Screenshots go to $LIT_UI_SCREENSHOTS if set (docs/screenshots/ holds the committed ones), else to tmp_path:
    LIT_UI_SCREENSHOTS=docs/screenshots python -m pytest -q tests/test_ui.py
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from lit.runtime.records import NullReporter
from lit.runtime.status import WorkStatus
from lit.runtime.ui import Dashboard, DashboardReporter, Hub, ui_wanted
from lit.runtime.ui.hub import QUEUE_LIMIT
from lit.runtime.ui.reporter import machine_from_progress
from tests.conftest import REPO, LitRunner
from tests.support import require, wait_for, wait_line

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
URL_LINE = re.compile(r"^dashboard: (http://127\.0\.0\.1:(\d+)/\?token=(\S+))$", re.M)

SLOW_APP = '''
import time
import lit as L


class Ticker(L.LightningWork):
    def run(self, count):
        for i in range(count):
            print(f"tick {i} of {count}")
            time.sleep(0.5)


class Sleeper(L.LightningWork):
    def run(self):
        time.sleep(1.0)
        print("slept")


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.ticker = Ticker(parallel=True)
        self.sleeper = Sleeper(parallel=True)

    def run(self):
        self.ticker.run(8)
        if self.ticker.has_succeeded:
            self.sleeper.run()


app = L.LightningApp(Flow())
'''

FAILING_APP = '''
import time
import lit as L


class Prepare(L.LightningWork):
    def run(self):
        print("reading 128 rows")
        time.sleep(1.0)
        print("prepared 128 rows")


def check_loss(loss):
    if loss > 0.1:
        raise ValueError(f"loss diverged: {loss:.3f} after 3 epochs")


class Train(L.LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=L.CloudCompute("gpu"))

    def run(self):
        loss = 0.0
        for epoch in range(3):
            loss = 0.9 / (epoch + 1)
            print(f"epoch {epoch}: loss {loss:.3f}")
            time.sleep(0.5)
        check_loss(loss)


class Pipeline(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.prepare = Prepare()
        self.train = Train()

    def run(self):
        self.prepare.run()
        self.train.run()


app = L.LightningApp(Pipeline())
'''


# -- helpers ----------------------------------------------------------------------------------------------
def http_get(url: str, cookie: Optional[str] = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def listening(port: int) -> list[str]:
    """`ss`'s lines for TCP sockets listening on `port`, any address."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def listening_of(pid: int) -> list[str]:
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if f"pid={pid}," in line]


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def write_app(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("LIT_UI_SCREENSHOTS") or tmp_path)
    if not folder.is_absolute():
        folder = REPO / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start_with_ui(lit: LitRunner, app: Path, *args: str) -> tuple[subprocess.Popen[str], str, int]:
    """`lit run APP --ui`, up to the dashboard's URL (stderr keeps streaming into the pipe)."""
    proc = lit.popen_raw(lit.command(app, "--ui", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = wait_line(proc, "dashboard:", timeout=30, stream="stderr")
    found = URL_LINE.search(seen[-1].strip())
    assert found, seen
    return proc, found[1], int(found[2])


def finish(lit: LitRunner, proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        lit.cleanup()
        raise
    return proc.returncode, out, err


# -- the browser -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    require(f"not installed: {', '.join(missing)} (apt-get install chromium chromium-driver)" if missing else None,
            "the dashboard's browser tests")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1440,960", "--force-device-scale-factor=1", "--lang=en-US"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def rows(driver: Any) -> dict[str, str]:
    """Each work row's status, as the page shows it."""
    return driver.execute_script(
        "const out = {}; document.querySelectorAll('#works tbody tr[data-work]').forEach(r => "
        "{ out[r.dataset.work] = r.children[1].textContent; }); return out;")


def log_lines(driver: Any) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#logs .line')).map(l => l.dataset.work + ': ' + "
        "l.querySelector('.x').textContent);")


def until(driver: Any, predicate: Any, timeout: float, what: str) -> Any:
    return wait_for(lambda: predicate(driver), timeout, what)


# -- the pieces, without a browser ---------------------------------------------------------------------------
def test_ui_default_is_a_person_at_a_terminal() -> None:
    assert ui_wanted(None, None, {}, tty=True)
    assert not ui_wanted(None, None, {}, tty=False)
    assert not ui_wanted(None, None, {"CI": "true"}, tty=True)
    assert ui_wanted(None, None, {"CI": ""}, tty=True)
    assert ui_wanted(True, None, {"CI": "true"}, tty=False)  # asked for: served
    assert not ui_wanted(False, 8123, {}, tty=True)
    assert ui_wanted(None, 8123, {}, tty=False)  # a port asks for it


def test_machine_from_progress_lines() -> None:
    assert machine_from_progress("agent up on lit@10.0.0.5") == {"machine": "lit@10.0.0.5"}
    assert machine_from_progress("running: i-0abc (g4dn.xlarge) at 3.3.3.3 (private 10.0.0.9)") == {
        "machine": "i-0abc", "instance_type": "g4dn.xlarge"}
    assert machine_from_progress("running: pod lit-run-a on node gpu-1 at 10.1.0.4") == {
        "machine": "pod lit-run-a on gpu-1"}
    assert machine_from_progress("shipping code (12 KB)") == {}


def test_progress_lines_and_the_launchers_report_name_the_machine() -> None:
    hub = Hub()
    reporter = DashboardReporter(NullReporter(), hub, cluster="gpus")
    reporter.progress("train", "requested g4dn.xlarge in us-east-1a")
    reporter.progress("train", "running: i-0abc (g4dn.xlarge) at 3.3.3.3 (private 10.0.0.9)")
    reporter.status("train", WorkStatus.now("running"))
    work = hub.work("train")
    assert (work["machine"], work["instance_type"], work["cluster"], work["stage"]) == (
        "i-0abc", "g4dn.xlarge", "gpus", "running")
    assert work["running_since"] and work["step"].startswith("running: i-0abc")
    reporter.status("train", WorkStatus.now("failed", "ValueError: x"))
    assert hub.work("train")["running_since"] is None
    assert [e["line"] for e in hub.snapshot()["logs"]][-1] == "failed: ValueError: x"


def test_a_slow_page_gets_a_snapshot_instead_of_every_event() -> None:
    hub = Hub({"app": "x.py"})
    page = hub.subscribe()
    assert hub.next_events(page, 0)[0]["type"] == "snapshot"
    for i in range(QUEUE_LIMIT + 50):  # the loop never waits: the page's queue is dropped, not grown
        hub.add_log("w", "stdout", f"line {i}")
    events = hub.next_events(page, 0)
    assert [e["type"] for e in events] == ["snapshot"]
    assert events[0]["logs"][-1]["line"] == f"line {QUEUE_LIMIT + 49}"
    hub.add_log("w", "stdout", "after")
    assert [e["log"]["line"] for e in hub.next_events(page, 0)] == ["after"]
    hub.close()
    assert hub.next_events(page, 0) is None


def test_token_loopback_and_nothing_left_listening() -> None:
    dashboard = Dashboard(0, {"app": "x.py"})
    host, port = dashboard.address
    assert host == "127.0.0.1"
    base = f"http://127.0.0.1:{port}"
    assert listening(port) and all(f"127.0.0.1:{port}" in line for line in listening(port))
    for path in ("/", "/events", "/state", "/app.js", "/?token=wrong", "/state?token=" + dashboard.token[:-1] + "x"):
        assert http_get(base + path)[0] == 403, path
    status, body = http_get(dashboard.url)
    assert status == 200 and "<title>lit run</title>" in body
    assert http_get(base + "/state", cookie=f"{dashboard.cookie_name}={dashboard.token}")[0] == 200
    assert http_get(base + "/state", cookie=f"lit_ui_1={dashboard.token}")[0] == 403  # another port's cookie name
    # A name rebound to 127.0.0.1 by another site is refused even with the token.
    request = urllib.request.Request(dashboard.url, headers={"Host": f"evil.example:{port}"})
    with pytest.raises(urllib.error.HTTPError) as refused_host:
        urllib.request.urlopen(request, timeout=5)
    refused_host.value.close()
    assert refused_host.value.code == 403
    dashboard.close()
    assert not listening(port) and refused(port)


def test_an_open_event_stream_does_not_hold_close_up() -> None:
    dashboard = Dashboard(0, {"app": "x.py"})
    reporter = dashboard.reporter(NullReporter())
    stream = urllib.request.urlopen(f"http://127.0.0.1:{dashboard.port}/events?token={dashboard.token}", timeout=5)
    assert stream.readline() == b"retry: 2000\n"
    stream.readline()
    assert json.loads(stream.readline().decode()[len("data: "):])["type"] == "snapshot"
    reporter.status("w", WorkStatus.now("running"))
    stream.readline()
    assert json.loads(stream.readline().decode()[len("data: "):])["work"]["stage"] == "running"
    dashboard.close()  # returns although a page still holds its event stream open (pytest-timeout otherwise)
    assert not listening(dashboard.port)
    stream.close()


# -- lit run --ui, in a browser --------------------------------------------------------------------------------
@pytest.mark.e2e
def test_statuses_and_logs_live_without_reload_and_the_filter(lit: LitRunner, browser: Any, tmp_path: Path) -> None:
    app = write_app(tmp_path, "slow_app.py", SLOW_APP)
    proc, url, port = start_with_ui(lit, app)
    # While it runs: loopback only, and the token is required.
    lines = listening(port)
    assert lines and all(re.search(rf"\s127\.0\.0\.1:{port}\s", line) for line in lines), lines
    assert all(re.search(r"\s127\.0\.0\.1:\d+\s", line) for line in listening_of(proc.pid)), listening_of(proc.pid)
    assert http_get(f"http://127.0.0.1:{port}/")[0] == 403
    assert http_get(f"http://127.0.0.1:{port}/events?token=nope")[0] == 403

    browser.get(url)
    browser.execute_script("window.notReloaded = true;")
    until(browser, lambda d: rows(d).get("ticker") == "running", 15, "ticker running")
    assert rows(browser).get("sleeper") == "not started"
    first = len(until(browser, lambda d: [x for x in log_lines(d) if "tick" in x], 10, "a first tick"))
    assert first < 8
    # Lines arrive as they are printed (one every 0.5 s), not at the end: more come while the work still runs.
    until(browser, lambda d: len([x for x in log_lines(d) if "tick" in x]) >= first + 2, 10, "more ticks")
    assert rows(browser)["ticker"] == "running"
    until(browser, lambda d: rows(d).get("sleeper") == "running", 15, "sleeper running")
    assert rows(browser)["ticker"] == "succeeded"
    until(browser, lambda d: rows(d) == {"ticker": "succeeded", "sleeper": "succeeded"}, 15, "both succeeded")
    assert browser.execute_script("return window.notReloaded === true;")
    assert "ticker: tick 7 of 8" in log_lines(browser) and "sleeper: slept" in log_lines(browser)
    calls = browser.execute_script(
        "return Array.from(document.querySelectorAll('#works tbody tr')).map(r => r.children[5].textContent);")
    assert calls == ["1", "1"]

    # The filter: only matching lines, the match marked; the work selector narrows to one work.
    box = browser.find_element("id", "log-filter")
    box.send_keys("tick 3")
    assert log_lines(browser) == ["ticker: tick 3 of 8"]
    assert browser.find_element("css selector", "#logs mark").text == "tick 3"
    box.clear()
    box.send_keys("SLEPT")  # case does not matter
    assert log_lines(browser) == ["sleeper: slept"]
    box.clear()
    browser.execute_script("const s = document.getElementById('log-work'); s.value = 'sleeper';"
                           "s.dispatchEvent(new Event('change'));")
    assert {line.split(":")[0] for line in log_lines(browser)} == {"sleeper"}

    code, _, err = finish(lit, proc)
    assert code == 0, err
    assert "token=" not in err and "dashboard" not in err  # the URL line (read above) is said once, no more
    until(browser, lambda d: "Run finished" in d.find_element("id", "banner").text, 10, "the end on the page")
    assert not listening(port) and refused(port)


@pytest.mark.e2e
def test_a_failed_works_traceback_shows(lit: LitRunner, browser: Any, tmp_path: Path) -> None:
    app = write_app(tmp_path, "failing_app.py", FAILING_APP)
    proc, url, port = start_with_ui(lit, app)
    browser.get(url)
    until(browser, lambda d: rows(d).get("train") == "running", 20, "train running")
    code, _, err = finish(lit, proc)
    assert code == 1, err  # the dashboard does not change the exit code
    card = until(browser, lambda d: d.find_elements("css selector", ".failure[data-work=train] pre.traceback"),
                 10, "the traceback card")[0]
    text = card.text
    assert text.startswith("Traceback (most recent call last):"), text
    assert "check_loss(loss)" in text and 'raise ValueError(f"loss diverged' in text
    assert text.rstrip().endswith("ValueError: loss diverged: 0.300 after 3 epochs")
    assert rows(browser) == {"prepare": "succeeded", "train": "failed"}
    assert "failed (exit 1)" in browser.find_element("id", "run-state").text
    assert "epoch 2: loss 0.300" in "\n".join(log_lines(browser))
    browser.find_element("css selector", ".failure").location_once_scrolled_into_view
    browser.save_screenshot(str(screenshot_dir(tmp_path) / "failing_app.png"))
    assert not listening(port) and refused(port)


@pytest.mark.e2e
@pytest.mark.parametrize("example", ["hello_app", "train_analyze_app"])
def test_screenshot_of_an_example(example: str, browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  ) -> None:
    """The example runs in this process with a dashboard; the page is opened once it ended (the dashboard keeps
    serving until closed: `lit run` closes it at once), so the screenshot shows the whole run."""
    from lit.runtime.loader import load_app
    from lit.runtime.orchestrator import Orchestrator

    monkeypatch.setenv("LIT_HOME", str(tmp_path / "home"))
    app_file = REPO / "examples" / f"{example}.py"
    monkeypatch.chdir(tmp_path)
    with Dashboard(0, {"app": app_file.name, "run_name": f"{example}-demo", "cluster": "local"}) as dashboard:
        reporter = dashboard.reporter(NullReporter())
        started = time.monotonic()
        orchestrator = Orchestrator(load_app(str(app_file)), app_file, tmp_path / "run", reporter=reporter)
        reporter.watch(orchestrator)
        outcome = orchestrator.run()
        dashboard.finish(outcome, time.monotonic() - started)
        assert outcome.exit_code == 0, outcome
        browser.get(dashboard.url)
        names = {"hello_app": ["work_A", "work_B"], "train_analyze_app": ["train", "analyze"]}[example]
        until(browser, lambda d: rows(d) == {n: "succeeded" for n in names}, 10, "every work succeeded")
        lines = "\n".join(log_lines(browser))
        if example == "hello_app":
            assert "work_A: running code A on a CPU machine" in lines
        else:
            assert "train: trained on 1000 samples" in lines and "analyze: mean absolute error" in lines
        tree = browser.find_element("id", "tree").text
        assert all(n in tree for n in names)
        browser.save_screenshot(str(screenshot_dir(tmp_path) / f"{example}.png"))


# -- when nothing is served ----------------------------------------------------------------------------------
def _run_on_a_tty(lit: LitRunner, app: Path, *args: str, env: Optional[dict[str, str]] = None,
                  ) -> tuple[int, str, list[str]]:
    """lit run with stderr on a pseudo-terminal: its exit code, what it wrote there, and what lit's own process
    listened on while its works ran."""
    master, slave = pty.openpty()
    proc = lit.popen_raw(lit.command(app, *args), stdout=subprocess.PIPE, stderr=slave, process_env=env)
    os.close(slave)
    said, sockets = b"", []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal's other end closed: lit ended
                break
            if not chunk:
                break
            said += chunk
        if proc.poll() is None:
            sockets += listening_of(proc.pid)
    os.close(master)
    proc.communicate(timeout=10)
    return proc.returncode, said.decode(errors="replace"), sockets


@pytest.mark.e2e
def test_served_by_default_on_a_terminal_and_never_under_ci_or_no_ui(lit: LitRunner, tmp_path: Path) -> None:
    app = write_app(tmp_path, "slow_app.py", SLOW_APP.replace("self.ticker.run(8)", "self.ticker.run(2)"))
    code, said, sockets = _run_on_a_tty(lit, app, env={"CI": ""})
    assert code == 0 and "dashboard: http://127.0.0.1:" in said and sockets, said
    for args, env in (((), {"CI": "true"}), (("--no-ui",), {"CI": ""})):
        code, said, sockets = _run_on_a_tty(lit, app, *args, env=env)
        assert code == 0, said
        assert "dashboard" not in said and sockets == [], (args, env, said, sockets)
    # Without a terminal (a pipe), nothing either.
    result = lit.run(app, process_env={"CI": ""})
    assert result.returncode == 0 and "dashboard" not in result.stderr


@pytest.mark.e2e
def test_a_taken_port_runs_the_app_without_the_dashboard(lit: LitRunner, tmp_path: Path) -> None:
    app = write_app(tmp_path, "slow_app.py", SLOW_APP.replace("self.ticker.run(8)", "self.ticker.run(1)"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = lit.run(app, "--ui-port", str(port))
    assert result.returncode == 0, result.stderr
    assert f"dashboard: not served, cannot listen on 127.0.0.1:{port}" in result.stderr


# -- the app's own tabs (configure_layout) -------------------------------------------------------------------
LAYOUT_APP = '''
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import lit as L
from lit.app.frontend import StaticWebFrontend, StreamlitFrontend

PAGE = """<!doctype html><html><head><title>Model board</title><link rel="stylesheet" href="board.css"></head>
<body><h1 id="title">Model board</h1><p id="where">served by {host}:{port} at {path}</p>
<table><tr><th>epoch</th><th>loss</th></tr><tr><td>1</td><td>0.412</td></tr><tr><td>2</td><td>0.231</td></tr>
<tr><td>3</td><td>0.118</td></tr></table>
<form id="ask" method="post" action="predict"><input name="text" value="a cat on a mat"><button>predict</button></form>
</body></html>"""
CSS = ("body{font:15px system-ui;margin:24px;color:#223}h1{color:#4b5bd6}"
       "td,th{padding:4px 14px;border-bottom:1px solid #ddd}")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, kind, body):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.endswith("board.css"):
            self._send("text/css", CSS.encode())
        elif self.path.startswith("/headers"):
            self._send("text/plain", "\\n".join(f"{k}: {v}" for k, v in self.headers.items()).encode()
                       + b"\\npath: " + self.path.encode())
        else:
            host, port = self.server.server_address[:2]
            self._send("text/html", PAGE.format(host=host, port=port, path=self.path).encode())

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._send("text/plain", b"predicted for " + body)


class Board(L.LightningWork):
    def __init__(self):
        super().__init__(parallel=True)

    def run(self):
        print(f"board on {self.host}:{self.port}", flush=True)
        ThreadingHTTPServer((self.host, self.port), Handler).serve_forever()


class Waiter(L.LightningWork):
    def __init__(self):
        super().__init__(parallel=True)

    def run(self, done):
        while not os.path.exists(done):
            time.sleep(0.2)


class Pages(L.LightningWork):
    def configure_layout(self):
        return StaticWebFrontend("site")

    def run(self):
        print("pages ready", flush=True)


class Demo(L.LightningFlow):
    def configure_layout(self):
        return StreamlitFrontend(render_fn=print)


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.board = Board()
        self.pages = Pages()
        self.waiter = Waiter()
        self.demo = Demo()

    def run(self):
        self.board.run()
        self.pages.run()
        self.waiter.run(os.environ["DONE_FILE"])
        if self.waiter.has_succeeded:
            self.board.stop()
            self.stop("layout shown")

    def configure_layout(self):
        return [{"name": "Board", "content": self.board}, {"name": "Pages", "content": self.pages},
                {"name": "Docs", "content": "https://lightning.ai/docs/app/"},
                {"name": "Streamlit demo", "content": self.demo}]


app = L.LightningApp(Flow())
'''


def write_layout_app(tmp_path: Path) -> Path:
    app = write_app(tmp_path, "layout_app.py", LAYOUT_APP)
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "index.html").write_text('<!doctype html><link rel="stylesheet" href="style.css">'
                                     '<h1 id="title">Static pages</h1><p>from the app folder</p>')
    (site / "style.css").write_text("h1 { color: rgb(31, 157, 85); }")
    (tmp_path / "secret.txt").write_text("outside the folder")
    return app


def tab_names(driver: Any) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#tabs .tab')).map(b => b.textContent);")


def open_tab(driver: Any, name: str) -> None:
    driver.execute_script("Array.from(document.querySelectorAll('#tabs .tab')).find(b => b.textContent === "
                          "arguments[0]).click();", name)


def frame_text(driver: Any, tab_id: str, selector: str, timeout: float = 15) -> str:
    """The text of `selector` in tab `tab_id`'s iframe, once there (the work may still be starting)."""
    def read(d: Any) -> Optional[str]:
        d.switch_to.default_content()
        frames = d.find_elements("css selector", f".pane[data-tab='{tab_id}'] iframe")
        if not frames:
            return None
        d.switch_to.frame(frames[0])
        try:
            found = d.find_elements("css selector", selector)
            return found[0].text if found else None
        finally:
            d.switch_to.default_content()
    return until(driver, read, timeout, f"{selector} in tab {tab_id}")


class _Echo:
    """A local HTTP server that answers with the request it got (to see what the proxy sends on)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        echo = self
        self.first_read = threading.Event()  # set by the test once it read the first piece of /stream

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path.startswith("/stream"):  # the rest only once the caller has read the first piece
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    self.wfile.write(b"piece 0\n")
                    self.wfile.flush()
                    echo.first_read.wait(30)  # a proxy that buffered would never pass piece 0 on: the test hangs
                    self.wfile.write(b"piece 1\npiece 2\n")
                    self.wfile.flush()
                    return
                if self.path.startswith("/redirect"):
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/landed")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                text = json.dumps({"method": self.command, "path": self.path, "body": body.decode(),
                                   "headers": dict(self.headers.items())}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.send_header("X-Frame-Options", "DENY")
                self.end_headers()
                self.wfile.write(text)

            do_GET = do_POST = do_PUT = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.first_read.set()
        self.server.shutdown()
        self.server.server_close()


def test_the_proxy_and_a_folder_need_the_token_and_keep_to_their_tab(tmp_path: Path) -> None:
    from lit.runtime.ui.layout import Tab

    echo = _Echo()
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>index</h1>")
    (tmp_path / "secret.txt").write_text("secret")
    (site / "link").symlink_to(tmp_path / "secret.txt")
    dashboard = Dashboard(0, {"app": "x.py"})
    try:
        dashboard.tabs.set_tabs([Tab("board", "Board", "work", work="root.board"),
                                 Tab("pages", "Pages", "static", folder=site.resolve())])
        base = f"http://127.0.0.1:{dashboard.port}"
        cookie = f"{dashboard.cookie_name}={dashboard.token}; theirs=kept"
        # Without the token: refused, whatever the method; the work's server is not reached.
        for method in ("GET", "POST", "PUT", "DELETE"):
            data = b"x" if method != "GET" else None
            request = urllib.request.Request(base + "/app/board/x", method=method, data=data)
            with pytest.raises(urllib.error.HTTPError) as refused_request:
                urllib.request.urlopen(request, timeout=5)
            refused_request.value.close()
            assert refused_request.value.code == 403, method
        assert http_get(base + "/app/pages/")[0] == 403
        assert http_get(base + "/app/board/?token=wrong")[0] == 403
        # The work has no address yet: a page that says so (and reloads itself).
        status, body = http_get(base + "/app/board/", cookie=cookie)
        assert status == 503 and "board has not started yet" in body
        dashboard.tabs.set_address("root.board", "127.0.0.1", echo.port)
        status, body = http_get(base + "/app/board/a/b?token=" + dashboard.token + "&q=1", cookie=cookie)
        seen = json.loads(body)
        assert status == 200 and seen["path"] == "/a/b?q=1"  # the token is not passed on, in the URL ...
        assert seen["headers"].get("Cookie") == "theirs=kept"  # ... nor in the cookie; the page's own cookies are
        assert dashboard.token not in body
        request = urllib.request.Request(base + "/app/board/predict", data=b'{"text": "hi"}', method="POST",
                                         headers={"Cookie": cookie, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["X-Frame-Options"] == "SAMEORIGIN"  # framed by the dashboard only
            assert json.loads(response.read())["body"] == '{"text": "hi"}'
        # A streamed answer arrives piece by piece.
        stream = urllib.request.urlopen(urllib.request.Request(base + "/app/board/stream",
                                                               headers={"Cookie": cookie}), timeout=5)
        assert stream.readline() == b"piece 0\n"  # before the server sends the rest
        echo.first_read.set()
        assert stream.read() == b"piece 1\npiece 2\n"
        stream.close()
        # A redirect to the work's own address comes back into the tab; an absolute link of a tab's page too.
        opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,),
                                                  {"redirect_request": lambda *a, **k: None}))
        for path, headers, location in (
                ("/app/board/redirect", {}, "/app/board/landed"),
                ("/static/app.js", {"Referer": f"{base}/app/board/page"}, "/app/board/static/app.js")):
            with pytest.raises(urllib.error.HTTPError) as redirected:
                opener.open(urllib.request.Request(base + path, headers={"Cookie": cookie, **headers}), timeout=5)
            redirected.value.close()
            assert redirected.value.headers["Location"] == location
        # WebSockets are out of scope: said so.
        request = urllib.request.Request(base + "/app/board/ws", headers={"Cookie": cookie, "Upgrade": "websocket"})
        with pytest.raises(urllib.error.HTTPError) as upgrade:
            urllib.request.urlopen(request, timeout=5)
        upgrade.value.close()
        assert upgrade.value.code == 501
        # The folder: its files, nothing outside it (.., encoded .., a symlink out).
        assert http_get(base + "/app/pages/", cookie=cookie) == (200, "<h1>index</h1>")
        for path in ("/app/pages/../secret.txt", "/app/pages/%2e%2e/secret.txt", "/app/pages/..%2fsecret.txt",
                     "/app/pages/link", "/app/pages/%2fetc%2fpasswd", "/app/nosuch/"):
            status, body = http_get(base + path, cookie=cookie)
            assert status == 404 and "secret" not in body, path
    finally:
        dashboard.close()
        echo.close()


@pytest.mark.e2e
def test_the_apps_layout_tabs(lit: LitRunner, browser: Any, tmp_path: Path) -> None:
    app = write_layout_app(tmp_path)
    done = tmp_path / "done"
    proc, url, port = start_with_ui(lit, app, "--env", f"DONE_FILE={done}")
    try:
        browser.get(url)
        until(browser, lambda d: tab_names(d) == ["Run", "Board", "Pages", "Docs", "Streamlit demo"], 20, "tabs")
        # A work's HTTP server, through the dashboard's own server (same origin, under /app/board/).
        open_tab(browser, "Board")
        assert frame_text(browser, "board", "#title", 20) == "Model board"
        assert frame_text(browser, "board", "#where").endswith("at /")
        frame = browser.find_element("css selector", ".pane[data-tab='board'] iframe")
        assert frame.get_attribute("src") == f"http://127.0.0.1:{port}/app/board/"
        browser.switch_to.frame(frame)
        color = browser.execute_script("return getComputedStyle(document.querySelector('h1')).color")
        assert color == "rgb(75, 91, 214)"  # its stylesheet, a relative link, came through the proxy
        browser.switch_to.default_content()
        until(browser, lambda d: rows(d).get("board") == "running", 10, "board running")
        browser.save_screenshot(str(screenshot_dir(tmp_path) / "layout_tab.png"))
        # Its form posts through the proxy too.
        browser.switch_to.frame(frame)
        browser.find_element("css selector", "#ask button").click()
        until(browser, lambda d: "predicted for text=a+cat+on+a+mat" in d.find_element("tag name", "body").text,
              10, "the POST's answer")
        browser.switch_to.default_content()
        # A StaticWebFrontend: its folder's index.html (relative to the app's folder).
        open_tab(browser, "Pages")
        assert frame_text(browser, "pages", "#title") == "Static pages"
        # An external URL: an iframe with that URL.
        open_tab(browser, "Docs")
        docs = until(browser, lambda d: d.find_elements("css selector", ".pane[data-tab='docs'] iframe"), 5, "docs")
        assert docs[0].get_attribute("src") == "https://lightning.ai/docs/app/"
        # A planned frontend: its one line, in its tab.
        open_tab(browser, "Streamlit demo")
        error = until(browser, lambda d: d.find_elements("css selector", ".pane[data-tab='streamlit-demo'] "
                                                         ".tab-error"), 5, "the error line")[0].text
        assert error.startswith("LightningCompatError: L.frontend.StreamlitFrontend is planned") and "\n" not in error
        browser.save_screenshot(str(screenshot_dir(tmp_path) / "layout_error_tab.png"))
        # Back to the run view: it is still live.
        open_tab(browser, "Run")
        assert browser.find_element("id", "run-view").is_displayed()
        assert http_get(f"http://127.0.0.1:{port}/app/board/")[0] == 403  # the proxy wants the token too
        assert http_get(f"http://127.0.0.1:{port}/app/pages/%2e%2e/secret.txt")[0] == 403
    finally:
        done.write_text("done")
    code, _, err = finish(lit, proc)
    assert code == 0, err
    assert "layout shown" in err and "Warning" not in err


# -- a work on another machine (the SSH test bed) ------------------------------------------------------------
BED_APP = '''
from http.server import BaseHTTPRequestHandler, HTTPServer

import lit as L


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        host, port = self.connection.getsockname()[:2]  # the address this request reached the machine at
        body = f"<h1 id=title>Board on {host}</h1><p id=where>{host}:{port}</p>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # /quit: the work ends, and with it the app
        self.send_response(204)
        self.end_headers()
        self.server.quit = True


class Board(L.LightningWork):
    def __init__(self):
        super().__init__(parallel=True)

    def run(self):
        server = HTTPServer((self.host, self.port), Handler)
        server.quit = False
        while not server.quit:
            server.handle_request()


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.board = Board()

    def run(self):
        self.board.run()
        if self.board.has_succeeded:
            self.stop("board closed")

    def configure_layout(self):
        return {"name": "Board", "content": self.board}


app = L.LightningApp(Flow())
'''


@pytest.fixture(scope="module")
def bed() -> Iterator[Any]:
    from tests.testbed import require_root_and_sshd, testbed_fixture

    require(require_root_and_sshd(), "the SSH test bed")
    yield from testbed_fixture(1)


@pytest.mark.e2e
def test_a_work_on_a_bed_host_renders_in_its_tab(bed: Any, browser: Any, tmp_path: Path) -> None:
    from tests.support import LitCli

    cli = LitCli(tmp_path, {**os.environ, "LIT_HOME": str(tmp_path / "home"), "NO_COLOR": "1"})
    host = bed.hosts[0]
    created = cli("create", "cluster", "ui", "--provider", "ssh", "--hosts", f"root@{host.address}", "--key",
                  str(bed.key_path), "--known-hosts", str(bed.known_hosts_path), "--orphan-timeout", "6")
    assert created.returncode == 0, created.stderr
    app = write_app(tmp_path, "bed_app.py", BED_APP)
    proc = cli.start("run", str(app), "--cloud", "ui", "--ui")
    quit_url = ""
    try:
        seen = wait_line(proc, "dashboard:", timeout=60, stream="stderr")
        found = URL_LINE.search(seen[-1].strip())
        assert found, seen
        url, port, token = found[1], int(found[2]), found[3]
        quit_url = f"http://127.0.0.1:{port}/app/board/quit?token={token}"
        browser.get(url)
        until(browser, lambda d: tab_names(d) == ["Run", "Board"], 30, "the Board tab")
        open_tab(browser, "Board")
        # The page comes from the work's server on the bed host, through this dashboard and the launcher's forward
        # (lit's SSH connection: the request reaches the host on its loopback, not its private address).
        assert frame_text(browser, "board", "#title", 60) == "Board on 127.0.0.1"
        until(browser, lambda d: rows(d).get("board") == "running", 10, "board running")
        browser.save_screenshot(str(screenshot_dir(tmp_path) / "layout_tab_remote.png"))
    finally:
        if quit_url:  # through the proxy too: the work ends, and the app with it
            try:
                urllib.request.urlopen(urllib.request.Request(quit_url, data=b"", method="POST"), timeout=10).close()
            except OSError:
                pass
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            cli.cleanup()
    assert proc.returncode == 0, err
    assert "board closed" in err
