"""Lightning's frontends (`L.frontend`): what a `configure_layout()` may return for `lit run`'s dashboard.

`StaticWebFrontend(serve_dir)` is supported: the dashboard serves the folder itself, in a tab (see
lit.runtime.ui.layout). Streamlit, Panel and JustPy frontends are planned: constructing one raises
LightningCompatError, so a `configure_layout()` that returns one shows that one line in its tab and the app still
runs. `Frontend` is the base class; lit runs no frontend servers of its own (`start_server`), so a custom subclass
is planned too and raises when constructed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from lit.runtime.compat import reject
from lit.runtime.errors import LightningCompatError

if TYPE_CHECKING:
    from lit.runtime.flow import LightningFlow

_INSTEAD = ("serve the UI from a work (configure_layout() returning its work.url, shown through the dashboard) or "
            "build it to static files and return L.frontend.StaticWebFrontend(folder)")


def planned(what: str) -> LightningCompatError:
    """The error for a frontend lit will support but does not yet (one line: the dashboard shows it in a tab)."""
    return LightningCompatError(f"{what} is planned and not supported by lit yet: {_INSTEAD}.")


class Frontend:
    """Lightning's base class for a frontend. lit serves only the frontends it knows (StaticWebFrontend): a
    frontend that starts its own server (`start_server`/`stop_server`) is planned."""

    def __init__(self) -> None:
        # Subclasses of lit's own supported frontends are fine (they are served as their base); anything else
        # would need lit to start its server, which it does not do yet.
        if not isinstance(self, StaticWebFrontend):
            raise planned(f"L.frontend.Frontend subclass {type(self).__name__}")
        self.flow: Optional[LightningFlow] = None

    def start_server(self, host: str, port: int, root_path: str = "") -> None:
        """Lightning starts a frontend's own server; lit's dashboard serves supported frontends itself."""

    def stop_server(self) -> None:
        """Nothing to stop: see start_server."""


class StaticWebFrontend(Frontend):
    """A folder of static files (at least index.html), served by `lit run`'s dashboard in the tab that returns
    it. A relative `serve_dir` is looked up in the app's folder (where Lightning's cloud runs the app), then in the
    current directory (where Lightning looks when it runs locally)."""

    def __init__(self, serve_dir: str) -> None:
        if not isinstance(serve_dir, (str, bytes)) and not hasattr(serve_dir, "__fspath__"):
            raise TypeError(f"StaticWebFrontend(serve_dir) takes a folder path, got {type(serve_dir).__name__}")
        super().__init__()
        self.serve_dir = str(serve_dir)


def _planned_frontend(name: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise planned(f"L.frontend.{name}")

    return type(name, (Frontend,), {"__init__": __init__, "__doc__": f"Planned: {name}."})


StreamlitFrontend = _planned_frontend("StreamlitFrontend")
PanelFrontend = _planned_frontend("PanelFrontend")
JustPyFrontend = _planned_frontend("JustPyFrontend")


class LightningPlugin:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise reject("L.LightningPlugin", "Lightning cloud plugins have no lit equivalent")


__all__ = ["Frontend", "JustPyFrontend", "LightningPlugin", "PanelFrontend", "StaticWebFrontend",
           "StreamlitFrontend"]
