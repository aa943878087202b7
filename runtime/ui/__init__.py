"""The live run dashboard `lit run` serves on 127.0.0.1: the component tree, each work's status, machine, calls,
wall time and cost, live logs and a failed work's traceback, updated with server-sent events."""

from __future__ import annotations

from .hub import Hub
from .reporter import DashboardReporter
from .server import HOST, Dashboard, ui_wanted

__all__ = ["HOST", "Dashboard", "DashboardReporter", "Hub", "ui_wanted"]
