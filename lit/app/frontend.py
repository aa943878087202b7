"""`lit.app.frontend` (as `lightning.app.frontend`): StaticWebFrontend is served by the dashboard; the others are
planned (see lit.frontend)."""

from lit.frontend import Frontend, JustPyFrontend, PanelFrontend, StaticWebFrontend, StreamlitFrontend

__all__ = ["Frontend", "JustPyFrontend", "PanelFrontend", "StaticWebFrontend", "StreamlitFrontend"]
