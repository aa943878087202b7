"""The dashboard's HTTP server: the standard library's, on 127.0.0.1 only, in its own daemon thread.

Every request needs the run's token, in the URL (`?token=`, what `lit run` prints) or in the cookie the first page
load sets (so the page's own requests carry it). Live updates are server-sent events: one long response per page.
The server never outlives the run and never holds up its exit: close() stops it, and its threads are daemons.
"""

from __future__ import annotations

import hmac
import json
import secrets
import socketserver
import threading
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

from ..records import Outcome, Reporter
from . import page, proxy
from .hub import Hub
from .layout import PREFIX, AppTabs
from .reporter import DashboardReporter

HOST = "127.0.0.1"  # loopback only, whatever the caller asks: the dashboard shows the app's logs
KEEPALIVE_SECONDS = 15.0  # a comment line this often, so a page notices a dead server (and proxies keep it open)
WRITE_TIMEOUT_SECONDS = 30.0  # a page that stops reading is dropped after this
CLOSE_FLUSH_SECONDS = 0.2  # at most this long for open pages to receive the run's end

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the first URL
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
                                # the app's tabs: its works' pages (proxied here) and the URLs its layout names
                                "frame-src 'self' http: https:"),
}
_STATIC = {
    "/app.js": ("text/javascript; charset=utf-8", page.SCRIPT),
    "/app.css": ("text/css; charset=utf-8", page.STYLE),
}


def ui_wanted(flag: Optional[bool], port: Optional[int], environ: dict[str, str], tty: bool) -> bool:
    """Whether `lit run` serves the dashboard: --ui/--no-ui if given; a --ui-port asks for it; otherwise only
    for a person at a terminal (not under CI=true, not without a TTY)."""
    if flag is not None:
        return flag
    if port is not None:
        return True
    if environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        return False
    return tty


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a page's open event stream never keeps the process alive
    allow_reuse_address = False  # never share a port another process listens on
    dashboard: Dashboard

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN (DNS, possibly slow); the name is not needed here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = WRITE_TIMEOUT_SECONDS
    server_version = "lit"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return None  # request lines carry the token; and the terminal is the run's

    def _dispatch(self) -> None:
        dashboard = self.server.dashboard
        url = urlsplit(self.path)
        if not self._host_ok(dashboard.port):
            self._refuse(HTTPStatus.FORBIDDEN, "wrong host")
            return
        query_token = (parse_qs(url.query).get("token") or [""])[0]
        token_ok = dashboard.token_matches(query_token) or dashboard.token_matches(self._cookie(dashboard))
        if not token_ok:
            self._refuse(HTTPStatus.FORBIDDEN, "forbidden: open the URL lit run printed (with its token)")
            return
        if url.path.startswith(f"/{PREFIX}/"):
            self._app_tab(dashboard, url.path[len(PREFIX) + 2:], url.query)
        elif self.command != "GET":
            tab_path = self._referring_tab()
            if tab_path is not None:
                proxy._redirect(self, tab_path + self.path)
            else:
                self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")
        elif url.path == "/":
            cookie = None
            if dashboard.token_matches(query_token):
                cookie = (f"{dashboard.cookie_name}={dashboard.token}; Path=/; HttpOnly; SameSite=Strict")
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", page.HTML.encode(), cookie)
        elif url.path in _STATIC:
            kind, text = _STATIC[url.path]
            self._send(HTTPStatus.OK, kind, text.encode())
        elif url.path == "/state":
            self._send(HTTPStatus.OK, "application/json", json.dumps(dashboard.hub.snapshot()).encode())
        elif url.path == "/events":
            self._stream(dashboard.hub)
        else:
            tab_path = self._referring_tab()
            if tab_path is not None:
                proxy._redirect(self, tab_path + self.path)
            else:
                self._refuse(HTTPStatus.NOT_FOUND, "not found")

    # Every method goes through the same checks; other methods than GET reach only the app's tabs (a work's server
    # takes forms and API calls).
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _app_tab(self, dashboard: Dashboard, after: str, query: str) -> None:
        """/app/<tab id><rest>: the tab's folder or its work's server."""
        tab_id, slash, rest = after.partition("/")
        tab = dashboard.tabs.tab(tab_id)
        if tab is None or tab.kind not in ("work", "static"):
            self._refuse(HTTPStatus.NOT_FOUND, "no such tab")
            return
        if not slash:  # /app/<id>: relative links need the trailing slash
            proxy._redirect(self, f"/{PREFIX}/{tab_id}/" + (f"?{query}" if query else ""))
            return
        if tab.kind == "static":
            proxy.serve_static(self, tab, "/" + rest)
        else:
            proxy.proxy(self, tab, "/" + rest, query, dashboard.tabs.target(tab.work), "lit_ui_")

    def _referring_tab(self) -> Optional[str]:
        """/app/<id> when this request comes from a page in a tab: an absolute link (`/static/app.js`) of a page
        served under its tab's path is sent back there."""
        referer = urlsplit(self.headers.get("Referer", ""))
        if referer.netloc != self.headers.get("Host", "") or not referer.path.startswith(f"/{PREFIX}/"):
            return None
        tab_id = referer.path[len(PREFIX) + 2:].partition("/")[0]
        tab = self.server.dashboard.tabs.tab(tab_id)
        return f"/{PREFIX}/{tab_id}" if tab is not None and tab.kind in ("work", "static") else None

    def _host_ok(self, port: int) -> bool:
        # A page of another site that a DNS name rebound to 127.0.0.1 sends its own name as Host.
        return self.headers.get("Host", "") in (f"{HOST}:{port}", f"localhost:{port}")

    def _cookie(self, dashboard: Dashboard) -> str:
        try:
            cookies = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return ""
        morsel = cookies.get(dashboard.cookie_name)
        return morsel.value if morsel is not None else ""

    def _refuse(self, status: HTTPStatus, text: str) -> None:
        self._send(status, "text/plain; charset=utf-8", (text + "\n").encode())

    def _send(self, status: HTTPStatus, kind: str, body: bytes, cookie: Optional[str] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in _SECURITY_HEADERS.items():
            self.send_header(name, value)
        if cookie is not None:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, hub: Hub) -> None:
        subscriber = hub.subscribe()
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            for name, value in _SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(b"retry: 2000\n\n")
            self.wfile.flush()
            while True:
                events = hub.next_events(subscriber, KEEPALIVE_SECONDS)
                if events is None:
                    return  # the run ended and this page has everything
                if events:
                    data = "".join(f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events)
                else:
                    data = ": keepalive\n\n"
                self.wfile.write(data.encode())
                self.wfile.flush()
        except OSError:
            return  # the page went away (closed tab, reload, timeout)
        finally:
            hub.unsubscribe(subscriber)
            self.close_connection = True


class Dashboard:
    """A run's dashboard: its hub, its server on 127.0.0.1 and the reporter feeding both. Raises OSError if it
    cannot listen (the port is taken)."""

    def __init__(self, port: int = 0, run: Optional[dict[str, Any]] = None, token: Optional[str] = None) -> None:
        self.hub = Hub(run)
        self.tabs = AppTabs()  # the app's own tabs (configure_layout) and where their pages are
        self.token = token or secrets.token_urlsafe(24)
        self._server = _Server((HOST, port), _Handler)
        self._server.dashboard = self
        self.port: int = self._server.server_address[1]
        # Cookies are per host, not per port: two runs' dashboards must not overwrite each other's.
        self.cookie_name = f"lit_ui_{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="lit-ui", daemon=True)
        self._thread.start()
        self._reporter: Optional[DashboardReporter] = None
        self._closed = False

    @property
    def address(self) -> tuple[str, int]:
        return self._server.server_address[0], self.port

    @property
    def url(self) -> str:
        """The address to open: it carries the token."""
        return f"http://{HOST}:{self.port}/?token={self.token}"

    def token_matches(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def reporter(self, inner: Reporter, cluster: str = "local") -> DashboardReporter:
        """The Reporter to give the orchestrator: `inner` gets everything first."""
        self._reporter = DashboardReporter(inner, self.hub, cluster, self.tabs)
        return self._reporter

    def finish(self, outcome: Outcome, elapsed: float) -> None:
        """The run ended: its outcome goes to open pages (which keep showing it once the server is gone)."""
        if self._reporter is not None:
            self._reporter.finish(outcome, elapsed)

    def close(self, flush: float = CLOSE_FLUSH_SECONDS) -> None:
        """Stop serving: open pages get what is queued for them (waiting at most `flush` seconds), then the port
        is closed. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.hub.close(flush)
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["HOST", "Dashboard", "ui_wanted"]
