"""`lit.app.frontend` (as `lightning.app.frontend`): rejected names."""

from lit.frontend import Frontend, JustPyFrontend, PanelFrontend, StaticWebFrontend, StreamlitFrontend

__all__ = ["Frontend", "JustPyFrontend", "PanelFrontend", "StaticWebFrontend", "StreamlitFrontend"]
