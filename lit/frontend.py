"""Lightning's frontends: rejected with a clear error (lit apps have no web UI of their own)."""

from __future__ import annotations

from typing import Any

from lit.runtime.compat import reject


def _rejected(name: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise reject(f"L.frontend.{name}", "lit apps have no web UI; serve one from a work and share work.url")

    return type(name, (), {"__init__": __init__, "__doc__": f"Rejected: {name}."})


Frontend = _rejected("Frontend")
StaticWebFrontend = _rejected("StaticWebFrontend")
StreamlitFrontend = _rejected("StreamlitFrontend")
PanelFrontend = _rejected("PanelFrontend")
JustPyFrontend = _rejected("JustPyFrontend")


class LightningPlugin:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise reject("L.LightningPlugin", "Lightning cloud plugins have no lit equivalent")


__all__ = ["Frontend", "JustPyFrontend", "LightningPlugin", "PanelFrontend", "StaticWebFrontend",
           "StreamlitFrontend"]
