"""Serving a tab's page: a folder's files (StaticWebFrontend) or a work's server through a reverse proxy.

Both live under the tab's own path, /app/<tab id>/, so a page's relative links stay inside its tab. The proxy
speaks HTTP/1.0 to the browser (the response ends when the connection closes), so a response is passed on as it
arrives: a streamed answer (server-sent events, a long download) is not held back. WebSockets are not proxied: an
upgrade request is answered 501.

What the work's server never sees: the dashboard's token (its cookie and a `token` query parameter are removed).
"""

from __future__ import annotations

import http.client
import mimetypes
import socket
from http import HTTPStatus
from typing import TYPE_CHECKING, Optional
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from .layout import PREFIX, Tab

if TYPE_CHECKING:
    from .server import _Handler

MAX_BODY_BYTES = 256 * 1024 * 1024  # a request body is read whole before it is sent on
CONNECT_SECONDS = 5.0
READ_SECONDS = 300.0  # a streaming response may be quiet this long between chunks
CHUNK = 64 * 1024
RETRY_SECONDS = 2  # a tab whose work is not up yet reloads itself this often

# Hop-by-hop headers (RFC 9110 7.6.1) and what the proxy sets itself.
_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "content-length"}
# Headers of the work's answer replaced here: the tab is framed by the dashboard (and only by it), and the page's
# own requests carry a Referer so an absolute link (/static/x) can be sent back into the tab (see server.py).
_REPLACED = {"x-frame-options", "referrer-policy"}
_PAGE_HEADERS = {"X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff",
                 "Cache-Control": "no-store"}


def _waiting_page(handler: _Handler, status: HTTPStatus, text: str) -> None:
    """A short page that reloads itself: the work may be starting."""
    body = (f"<!doctype html><meta charset=utf-8><meta http-equiv=refresh content={RETRY_SECONDS}>"
            f"<title>lit</title><body style=\"font:14px system-ui;color:#6b7383;padding:16px\">"
            f"{_escape(text)}</body>").encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "text/html; charset=utf-8")
    handler.send_header("Content-Length", str(len(body)))
    for name, value in _PAGE_HEADERS.items():
        handler.send_header(name, value)
    handler.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _redirect(handler: _Handler, location: str) -> None:
    handler.send_response(HTTPStatus.TEMPORARY_REDIRECT)  # 307: a POST stays a POST, with its body
    handler.send_header("Location", location)
    handler.send_header("Content-Length", "0")
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()


# -- a folder -------------------------------------------------------------------------------------------
def serve_static(handler: _Handler, tab: Tab, rest: str) -> None:
    """GET/HEAD a file of the tab's folder. `rest` is the request path after /app/<id> (still quoted). Nothing
    outside the folder is served: the resolved path (symlinks followed) must stay under it."""
    if handler.command not in ("GET", "HEAD"):
        handler._refuse(HTTPStatus.METHOD_NOT_ALLOWED, "a folder tab serves GET and HEAD only")
        return
    assert tab.folder is not None
    root = tab.folder
    relative = unquote(rest).lstrip("/")
    if "\x00" in relative or "\\" in relative:
        handler._refuse(HTTPStatus.BAD_REQUEST, "bad path")
        return
    try:
        target = (root / relative).resolve()
    except (OSError, RuntimeError):
        handler._refuse(HTTPStatus.NOT_FOUND, "not found")
        return
    if target != root and not target.is_relative_to(root):
        handler._refuse(HTTPStatus.NOT_FOUND, "not found")
        return
    if target.is_dir():
        if not rest.endswith("/"):  # relative links in index.html resolve against the folder, not its parent
            _redirect(handler, f"/{PREFIX}/{tab.id}{rest}/")
            return
        target = target / "index.html"
    if not target.is_file():
        handler._refuse(HTTPStatus.NOT_FOUND, "not found")
        return
    kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
        kind += "; charset=utf-8"
    try:
        size = target.stat().st_size
        stream = target.open("rb")
    except OSError:
        handler._refuse(HTTPStatus.NOT_FOUND, "not found")
        return
    with stream:
        handler.send_response(HTTPStatus.OK)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(size))
        for name, value in _PAGE_HEADERS.items():
            handler.send_header(name, value)
        handler.end_headers()
        if handler.command == "HEAD":
            return
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                return
            handler.wfile.write(chunk)


# -- a work's server ------------------------------------------------------------------------------------
def _upstream_path(rest: str, query: str) -> str:
    path = rest if rest.startswith("/") else "/" + rest
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"]
    return path + ("?" + urlencode(pairs) if pairs else "") if query else path


def _without_token_cookie(value: str, cookie_prefix: str) -> str:
    kept = [part.strip() for part in value.split(";") if not part.strip().startswith(cookie_prefix)]
    return "; ".join(part for part in kept if part)


def _location(value: str, upstream: tuple[str, int], base: str) -> str:
    """A redirect of the work's server, pointed back into the tab."""
    parts = urlsplit(value)
    if parts.scheme and parts.netloc:
        if (parts.hostname, parts.port or 80) not in (upstream, ("localhost", upstream[1])):
            return value  # elsewhere: as is
        value = value[len(f"{parts.scheme}://{parts.netloc}"):] or "/"
    if value.startswith("/"):
        return base + value
    return value  # relative: already inside the tab


def proxy(handler: _Handler, tab: Tab, rest: str, query: str, target: Optional[tuple[str, int]],
          cookie_prefix: str) -> None:
    """Send the request on to the work's server at `target` and its answer back as it comes."""
    work = tab.to_json().get("work", tab.work)
    if handler.headers.get("Upgrade"):
        handler._refuse(HTTPStatus.NOT_IMPLEMENTED, "websockets are not proxied by lit's dashboard yet")
        return
    if target is None:
        _waiting_page(handler, HTTPStatus.SERVICE_UNAVAILABLE, f"{work} has not started yet: this tab shows its "
                                                               "server once it has.")
        return
    if handler.headers.get("Transfer-Encoding"):
        handler._refuse(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length")
        return
    try:
        length = int(handler.headers.get("Content-Length") or 0)
    except ValueError:
        handler._refuse(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        return
    if length < 0 or length > MAX_BODY_BYTES:
        handler._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")
        return
    body = handler.rfile.read(length) if length else None
    headers = {name: value for name, value in handler.headers.items() if name.lower() not in _HOP}
    if "Cookie" in headers:
        kept = _without_token_cookie(headers.pop("Cookie"), cookie_prefix)
        if kept:
            headers["Cookie"] = kept
    base = f"/{PREFIX}/{tab.id}"
    headers.update({"Host": f"{target[0]}:{target[1]}", "X-Forwarded-Prefix": base, "X-Forwarded-Proto": "http",
                    "Connection": "close"})
    if body is not None:
        headers["Content-Length"] = str(len(body))
    connection = http.client.HTTPConnection(target[0], target[1], timeout=CONNECT_SECONDS)
    try:
        try:
            connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(READ_SECONDS)
            connection.request(handler.command, _upstream_path(rest, query), body=body, headers=headers)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            _waiting_page(handler, HTTPStatus.BAD_GATEWAY,
                          f"{work}'s server at {target[0]}:{target[1]} does not answer ({reason}); retrying.")
            return
        handler.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            low = name.lower()
            if (low in _HOP and low != "content-length") or low in _REPLACED or low in ("server", "date"):
                continue
            if low == "location":
                value = _location(value, target, base)
            handler.send_header(name, value)
        for name, value in _PAGE_HEADERS.items():
            if name.lower() in _REPLACED:
                handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.flush()
        if handler.command == "HEAD":
            return
        while True:
            try:
                chunk = response.read1(CHUNK)
            except (OSError, http.client.HTTPException):
                return  # the work's server went away mid-answer: the browser sees the connection end
            if not chunk:
                return
            handler.wfile.write(chunk)
            handler.wfile.flush()  # streamed answers reach the page as they come
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        return  # the page went away
    finally:
        connection.close()
        handler.close_connection = True
