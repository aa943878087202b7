"""LightningApp: wraps the root component. Creating it starts nothing; `lit run` runs it."""

from __future__ import annotations

from typing import Any, Optional, Union

from .compat import warn_ignored
from .component import Component
from .flow import LightningFlow
from .work import LightningWork

# Apps created while an app file is being loaded (the loader reads this list).
created: list[LightningApp] = []


class _RootFlow(LightningFlow):
    """A single work as the whole app: run it once; the app ends when it succeeds."""

    def __init__(self, work: LightningWork) -> None:
        super().__init__()
        self.work = work

    def run(self) -> None:
        self.work.run()


class LightningApp:
    def __init__(
        self,
        root: Union[LightningFlow, LightningWork],
        flow_cloud_compute: Any = None,
        log_level: str = "info",
        info: Any = None,
        root_path: str = "",
    ) -> None:
        if isinstance(root, LightningWork):
            root = _RootFlow(root)
        if not isinstance(root, LightningFlow):
            raise TypeError(f"LightningApp needs a LightningFlow or LightningWork as root, got {root!r}")
        if flow_cloud_compute is not None:
            warn_ignored("LightningApp(flow_cloud_compute=...)", "the flow runs where `lit run` runs")
        if info is not None:
            warn_ignored("LightningApp(info=...)", "lit apps have no web UI")
        if root_path:
            warn_ignored("LightningApp(root_path=...)", "lit apps have no web UI")
        if log_level not in ("info", "debug"):
            raise ValueError(f"log_level must be 'info' or 'debug', got {log_level!r}")
        self.root: LightningFlow = root
        self.log_level = log_level
        root._lit_attach("root")
        created.append(self)

    def get_component_by_name(self, name: str) -> Any:
        component = self.find(name)
        if component is None:
            raise ValueError(f"no component named {name!r} in the app")
        return component

    def find(self, path: str) -> Optional[Component]:
        """The component at `path` in the tree ("root.work_A", "root.trials.3"), or None."""
        parts = path.split(".")
        if not parts or parts[0] != "root":
            return None
        node: Optional[Component] = self.root
        for part in parts[1:]:
            try:
                node = node._lit_child(part)
            except (KeyError, IndexError, ValueError):
                return None
            if node is None:
                return None
        return node


App = LightningApp
