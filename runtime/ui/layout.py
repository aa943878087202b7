"""The app's own UI as dashboard tabs: what the flows' `configure_layout()` return, as Lightning reads it.

A flow's layout is a list of tabs `{"name": ..., "content": ...}` (or one such dict, or a frontend). Content is:
- a child flow: its own layout, its tabs flattened into this list (named "tab / child tab" when it has several);
- a work: its `configure_layout()` (a URL or a frontend), or, when it defines none, its own server (`work.url`);
- a URL string: a work's URL (plus a path) is reached through the dashboard's proxy, any other is framed as is;
- a frontend: `StaticWebFrontend(folder)`, whose files the dashboard serves.
A flow without `configure_layout()` has Lightning's default: one tab per child flow.

`configure_layout()` is user code. It is called on the loop's thread only: once when the run starts and again
when a work's status changes (a handful of times per work; Lightning calls it on every loop iteration), so a layout
that names `self.server.url` (empty until the server's machine is placed) becomes a working tab. A layout that
raises becomes one tab showing that error's one line; the run goes on.

A work's address is not read here: the HTTP threads ask `AppTabs.target()` when a tab's page is requested (the
reporter records addresses on the loop's thread), so a tab opened before its work started works once it has.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import urlsplit

from ..flow import LightningFlow
from ..transport import short_name
from ..work import LightningWork

if TYPE_CHECKING:
    from ..transport import Launcher

PREFIX = "app"  # tabs are served under /app/<tab id>/


@dataclass
class Tab:
    """One tab: `kind` is "work" (proxied to a work's server), "static" (a folder), "url" (framed as is), "none"
    (nothing to show yet or at all) or "error" (its layout raised: `error` is the one line)."""

    id: str
    name: str
    kind: str
    work: str = ""  # the work's full name ("root.server"), for "work"
    path: str = ""  # the path on the work's server the tab opens at ("/docs"), for "work"
    url: str = ""  # for "url"
    folder: Optional[Path] = None  # for "static"
    error: str = ""  # for "error"; for "none", why there is nothing
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """What the page is told (no local paths: a folder is the server's business)."""
        out: dict[str, Any] = {"id": self.id, "name": self.name, "kind": self.kind}
        if self.kind in ("work", "static"):
            out["src"] = f"{PREFIX}/{self.id}" + (self.path if self.path.startswith("/") else "/" + self.path)
        if self.kind == "work":
            out["work"] = short_name(self.work)
        if self.kind == "url":
            out["src"] = self.url
        if self.error:
            out["error"] = self.error
        return out


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0].strip() if text else ''}".rstrip(": ")


def _overrides(component: Any, base: type) -> bool:
    method = getattr(type(component), "configure_layout", None)
    return method is not None and method is not getattr(base, "configure_layout", None)


class _Collector:
    def __init__(self, root: LightningFlow, app_dir: Path, cwd: Path) -> None:
        self.root = root
        self.app_dir = app_dir
        self.cwd = cwd
        self.works = [work for _, work in root.named_works()]
        self.tabs: list[Tab] = []

    # -- the pieces -------------------------------------------------------------------------------
    def flow_tabs(self, flow: LightningFlow, name: str, depth: int = 0) -> list[tuple[str, Tab]]:
        """(name, tab) pairs for `flow`'s layout; a flow's layout that raises is one error tab named `name`."""
        if depth > 20:  # a layout naming its own ancestor: Lightning would loop; one line instead
            return [(name, self.error(ValueError("configure_layout() nests flows more than 20 deep")))]
        try:
            if _overrides(flow, LightningFlow):
                layout = flow.configure_layout()  # type: ignore[attr-defined]
            else:  # Lightning's default: a tab per child flow
                layout = [{"name": child.name.rsplit(".", 1)[-1], "content": child}
                          for child in flow._lit_components() if isinstance(child, LightningFlow)]
            return self.layout_tabs(flow, layout, name, depth)
        except Exception as exc:  # user code: its tab shows the line, the run goes on
            return [(name, self.error(exc))]

    def layout_tabs(self, flow: LightningFlow, layout: Any, name: str, depth: int) -> list[tuple[str, Tab]]:
        from lit.frontend import Frontend

        if isinstance(layout, Frontend):
            return [(name, self.frontend(layout))]
        if isinstance(layout, dict):
            layout = [layout]
        if not isinstance(layout, (list, tuple)) or not all(isinstance(entry, dict) for entry in layout):
            raise TypeError(f"{type(flow).__name__}.configure_layout() returned {type(layout).__name__}: return a "
                            "frontend, a dict {'name': ..., 'content': ...} or a list of them")
        out: list[tuple[str, Tab]] = []
        for index, entry in enumerate(layout):
            tab_name = str(entry.get("name") or f"tab {index + 1}")
            if "content" not in entry:
                out.append((tab_name, self.error(ValueError(f"tab {tab_name!r} has no 'content'"))))
                continue
            try:
                out.extend(self.content_tabs(entry["content"], tab_name, depth))
            except Exception as exc:
                out.append((tab_name, self.error(exc)))
        return out

    def content_tabs(self, content: Any, name: str, depth: int) -> list[tuple[str, Tab]]:
        from lit.frontend import Frontend

        if isinstance(content, LightningFlow):
            inner = self.flow_tabs(content, name, depth + 1)
            if len(inner) == 1:
                return [(name, inner[0][1])]
            return [(f"{name} / {inner_name}", tab) for inner_name, tab in inner]
        if isinstance(content, LightningWork):
            return [(name, self.work_tab(content))]
        if isinstance(content, str):
            return [(name, self.url(content))]
        if isinstance(content, Frontend):
            return [(name, self.frontend(content))]
        raise TypeError(f"unsupported content {type(content).__name__}: use a child flow, a work, a URL or a "
                        "frontend")

    def work_tab(self, work: LightningWork) -> Tab:
        from lit.frontend import Frontend

        if not _overrides(work, LightningWork):
            return Tab("", "", "work", work=work.name)
        try:
            layout = work.configure_layout()  # type: ignore[attr-defined]
        except Exception as exc:
            return self.error(exc)
        if layout is None:
            return Tab("", "", "none", error=f"{type(work).__name__}.configure_layout() returned None")
        if isinstance(layout, str):
            return self.url(layout, work)
        if isinstance(layout, Frontend):
            return self.frontend(layout)
        return self.error(TypeError(f"{type(work).__name__}.configure_layout() returned {type(layout).__name__}: "
                                    "return a URL or a frontend"))

    def url(self, url: str, owner: Optional[LightningWork] = None) -> Tab:
        """A URL: a work's own (its URL plus a path, or a loopback URL on its port) goes through the proxy."""
        if not url or url.startswith("/"):
            # Lightning's "not known yet" (`self.server.url + "/docs"` before the server started): its owner's
            # server at that path if a work said it, else nothing until the layout is read again.
            if owner is not None:
                return Tab("", "", "work", work=owner.name, path=url)
            return Tab("", "", "none", error="the URL is not known yet (its work has not started)")
        for work in self.works:
            if work.url and (url == work.url or url.startswith(work.url + "/") or url.startswith(work.url + "?")):
                return Tab("", "", "work", work=work.name, path=url[len(work.url):])
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {url[:80]!r}")
        if parts.hostname in ("127.0.0.1", "localhost", "0.0.0.0") and parts.port:
            for work in self.works:  # http://localhost:{self.server.port}: the browser may not be on that machine
                if work.port == parts.port:
                    rest = url.split(f":{parts.port}", 1)[1]
                    return Tab("", "", "work", work=work.name, path=rest)
        return Tab("", "", "url", url=url)

    def frontend(self, frontend: Any) -> Tab:
        from lit.frontend import StaticWebFrontend

        if not isinstance(frontend, StaticWebFrontend):  # Frontend() itself raises; this is a safety net
            return self.error(TypeError(f"{type(frontend).__name__} is not a frontend lit serves"))
        given = Path(frontend.serve_dir).expanduser()
        candidates = [given] if given.is_absolute() else [self.app_dir / given, self.cwd / given]
        for folder in candidates:
            if folder.is_dir():
                return Tab("", "", "static", folder=folder.resolve())
        where = "" if given.is_absolute() else f" in {self.app_dir} or {self.cwd}"
        return self.error(FileNotFoundError(f"StaticWebFrontend: no folder {frontend.serve_dir!r}{where}"))

    @staticmethod
    def error(exc: BaseException) -> Tab:
        return Tab("", "", "error", error=one_line(exc))


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:40] or "tab"


def collect_layout(root: LightningFlow, app_dir: Path, cwd: Optional[Path] = None) -> list[Tab]:
    """The app's tabs, in order, each with a stable id (from its name; the same name gets the same id at every
    collection). Never raises for what user code does: a failing part is an error tab."""
    collector = _Collector(root, app_dir, cwd or Path.cwd())
    root_name = type(root).__name__
    pairs = collector.flow_tabs(root, root_name)
    tabs: list[Tab] = []
    seen: set[str] = set()
    for name, tab in pairs:
        base = _slug(name)
        tab_id, n = base, 2
        while tab_id in seen:
            tab_id, n = f"{base}-{n}", n + 1
        seen.add(tab_id)
        tab.id, tab.name = tab_id, name
        tabs.append(tab)
    return tabs


class AppTabs:
    """The tabs and the works' addresses, shared by the loop's thread (which sets them) and the HTTP threads
    (which route requests with them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tabs: dict[str, Tab] = {}
        self._addresses: dict[str, tuple[str, int]] = {}  # work full name -> (internal_ip, port)
        self._forward: Optional[Callable[[str, int], Optional[tuple[str, int]]]] = None

    def set_launcher(self, launcher: Launcher) -> None:
        with self._lock:
            self._forward = launcher.forward

    def set_tabs(self, tabs: list[Tab]) -> None:
        with self._lock:
            self._tabs = {tab.id: tab for tab in tabs}

    def tab(self, tab_id: str) -> Optional[Tab]:
        with self._lock:
            return self._tabs.get(tab_id)

    def set_address(self, work: str, internal_ip: str, port: Optional[int]) -> None:
        if internal_ip and port:
            with self._lock:
                self._addresses[work] = (internal_ip, port)

    def target(self, work: str) -> Optional[tuple[str, int]]:
        """Where to connect for work `work`'s server: the launcher's forward if it has one (a machine with no
        route from here), else the work's own address; None until the work's machine is placed."""
        with self._lock:
            address, forward = self._addresses.get(work), self._forward
        if address is None:
            return None
        if forward is not None:
            forwarded = forward(work, address[1])
            if forwarded is not None:
                return forwarded
        return address
