"""A Reporter that passes everything on to another (the terminal's) and records it for the dashboard.

The loop calls it on its own thread. It also reads the orchestrator there (the component tree, per-work calls,
wall time and machine cost), only on that thread, so it never races the loop: the HTTP threads only see the hub.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..flow import LightningFlow
from ..records import Outcome, Reporter, WorkSummary
from ..status import WorkStageStatus, WorkStatus
from ..transport import short_name
from ..work import LightningWork
from .hub import Hub
from .layout import AppTabs, collect_layout

if TYPE_CHECKING:
    from ..component import Component
    from ..orchestrator import Orchestrator

LOG_REFRESH_SECONDS = 1.0  # log lines are many: they refresh the tree and numbers at most this often

# What the launchers' progress lines say about a work's machine (provisioner/remote.py and the providers).
_MACHINE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^running: pod (?P<pod>\S+) on node (?P<node>\S+)"), "pod"),
    (re.compile(r"^running: (?P<instance>\S+) \((?P<type>[^)]+)\) at (?P<address>\S+)"), "instance"),
    (re.compile(r"^starting (?P<instance>\S+) again \((?P<type>[^)]+)\)"), "instance"),
    (re.compile(r"^connecting to (?P<host>\S+)"), "host"),
    (re.compile(r"^agent up on (?P<host>\S+)"), "host"),
]


def machine_from_progress(step: str) -> dict[str, str]:
    """The work fields a progress line tells (machine, instance_type), or nothing."""
    for pattern, kind in _MACHINE_PATTERNS:
        found = pattern.match(step)
        if found is None:
            continue
        if kind == "pod":
            return {"machine": f"pod {found['pod']} on {found['node']}"}
        if kind == "instance":
            return {"machine": found["instance"], "instance_type": found["type"]}
        return {"machine": found["host"]}
    return {}


def component_tree(root: Component) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The flows and works under `root` (a work by its short name, as the reporter names it), and every flow's
    schedules."""
    schedules: list[dict[str, Any]] = []

    def node(component: Component, parent: str) -> dict[str, Any]:
        path = component.name
        label = path[len(parent) + 1:] if parent and path.startswith(parent + ".") else path
        if isinstance(component, LightningWork):
            return {"kind": "work", "name": short_name(path), "label": label, "cls": type(component).__name__}
        out: dict[str, Any] = {"kind": "flow", "name": path, "label": label, "cls": type(component).__name__,
                               "children": [node(child, path) for child in component._lit_components()]}
        if isinstance(component, LightningFlow):
            for schedule in component._lit_schedules.values():
                schedules.append({"flow": path, "expression": schedule.expression, "next": schedule.next_fire,
                                  "fired": schedule.fired})
        return out

    return node(root, ""), schedules


def _summary_fields(summary: WorkSummary) -> dict[str, Any]:
    fields: dict[str, Any] = {"compute": summary.compute, "calls": summary.calls,
                              "wall_time": round(summary.wall_time, 3)}
    if summary.instance_type:  # a machine made for this run: its type, time and cost (the launcher's report)
        fields.update(instance_type=summary.instance_type, machine_seconds=round(summary.machine_seconds, 1),
                      cost=summary.cost)
    return fields


class DashboardReporter:
    """Forwards to `inner` first (the terminal stays exactly as without a dashboard), then records in `hub`."""

    def __init__(self, inner: Reporter, hub: Hub, cluster: str = "local", tabs: Optional[AppTabs] = None) -> None:
        self.inner = inner
        self.hub = hub
        self.cluster = cluster
        self.tabs = tabs if tabs is not None else AppTabs()
        self._has_layout = False
        self._orchestrator: Optional[Orchestrator] = None
        self._loop_thread: Optional[int] = None
        self._refreshed = 0.0
        self._shape: tuple[int, int, int] = (-1, -1, -1)

    def watch(self, orchestrator: Orchestrator) -> None:
        """Read the tree and numbers from `orchestrator`; call on the thread that will run its loop."""
        self._orchestrator = orchestrator
        self._loop_thread = threading.get_ident()
        self._refresh_tree()
        for summary in orchestrator.summary():
            self.hub.update_work(summary.name, **_summary_fields(summary))
        self.tabs.set_launcher(orchestrator.launcher)
        self._refresh_layout()
        self._has_layout = bool(self.hub.snapshot()["layout"])

    def _refresh_layout(self) -> None:
        """The app's tabs from its flows' configure_layout() (user code: only ever called on the loop's thread).
        Called at the start and when a work's status changes, and only then: an app without tabs is not asked
        again (see layout.py)."""
        orchestrator = self._on_loop()
        if orchestrator is None:
            return
        tabs = collect_layout(orchestrator.app.root, Path(orchestrator.app_file).resolve().parent)
        self.tabs.set_tabs(tabs)
        self.hub.set_layout([tab.to_json() for tab in tabs])

    def _record_address(self, name: str) -> None:
        """Work `name`'s server address, for the proxy's threads (read here, on the loop's thread). The private
        fields are read so that asking does not count as the flow waiting for the address."""
        orchestrator = self._on_loop()
        handle = orchestrator.handle_named(f"root.{name}") if orchestrator is not None else None
        if handle is not None:
            self.tabs.set_address(handle.work.name, handle.work._lit_internal_ip, handle.work._lit_port)

    def _on_loop(self) -> Optional[Orchestrator]:
        """The orchestrator, when called on its loop's thread (a launcher's thread may report progress while the
        run ends: it must not read the loop's state)."""
        if self._orchestrator is None or threading.get_ident() != self._loop_thread:
            return None
        return self._orchestrator

    def _refresh_tree(self) -> None:
        """The tree and schedules, when a work joined or a schedule was added or fired (cheap to tell; a fan-out
        of many works is not walked at every event)."""
        orchestrator = self._on_loop()
        if orchestrator is None:
            return
        shape = (len(orchestrator.handles), len(orchestrator.schedules),
                 sum(schedule.fired for schedule in orchestrator.schedules))
        if shape == self._shape:
            return
        self._shape = shape
        tree, schedules = component_tree(orchestrator.app.root)
        self.hub.set_tree(tree, schedules)
        for name in _work_names(tree):
            if not self.hub.work(name):
                self.hub.update_work(name, stage=WorkStageStatus.NOT_STARTED, cluster=self.cluster)

    def _refresh_work(self, name: str) -> dict[str, Any]:
        """Work `name`'s calls, wall time and machine cost so far (nothing off the loop's thread)."""
        orchestrator = self._on_loop()
        if orchestrator is None:
            return {}
        handle = orchestrator.handle_named(f"root.{name}")
        if handle is None:
            return {}
        fields: dict[str, Any] = {"compute": handle.work.cloud_compute.name, "calls": handle.finished_calls,
                                  "wall_time": round(handle.wall_time, 3)}
        machine = orchestrator.launcher.machine_report().get(handle.name)
        if machine and machine.get("instance_type"):
            fields.update(instance_type=machine["instance_type"], machine_seconds=round(machine["seconds"], 1),
                          cost=machine["cost"])
        return fields

    # -- Reporter -----------------------------------------------------------------------------------
    def log(self, work: str, stream: str, line: str) -> None:
        self.inner.log(work, stream, line)
        self.hub.add_log(work, stream, line)
        if time.monotonic() - self._refreshed >= LOG_REFRESH_SECONDS:  # a work made in run() may print first
            self._refreshed = time.monotonic()
            self._refresh_tree()

    def progress(self, work: str, step: str) -> None:
        self.inner.progress(work, step)
        self.hub.add_log(work, "lit", step)
        self._refresh_tree()
        fields: dict[str, Any] = {"step": step, "cluster": self.cluster, **machine_from_progress(step)}
        fields.update(self._refresh_work(work))  # the launcher's report wins over what a line said
        self.hub.update_work(work, **fields)
        self._record_address(work)

    def status(self, work: str, status: WorkStatus) -> None:
        self.inner.status(work, status)
        self._refresh_tree()
        fields: dict[str, Any] = {"stage": status.stage, "message": status.message, "since": status.timestamp,
                                  "cluster": self.cluster}
        if status.stage == WorkStageStatus.RUNNING:
            fields.update(running_since=status.timestamp, traceback=None)
        elif status.stage != WorkStageStatus.PENDING:
            fields["running_since"] = None
        if status.stage in (WorkStageStatus.FAILED, WorkStageStatus.STOPPED) and status.message:
            self.hub.add_log(work, "lit", f"{status.stage}: {status.message}")
        self.hub.update_work(work, **fields, **self._refresh_work(work))
        self._record_address(work)
        if self._has_layout:  # `self.server.url` in a layout is known once its work is placed
            self._refresh_layout()

    # -- the end --------------------------------------------------------------------------------------
    def finish(self, outcome: Outcome, elapsed: float) -> None:
        """The run's outcome: final numbers, the failed work's traceback (or the flow's), the exit code."""
        for summary in outcome.works:
            self.hub.update_work(summary.name, stage=summary.stage, message=summary.message, running_since=None,
                                 **_summary_fields(summary))
        flow_traceback = None
        if outcome.traceback:
            if outcome.failed_work:
                self.hub.update_work(short_name(outcome.failed_work), traceback=outcome.traceback)
            else:
                flow_traceback = outcome.traceback
        self.hub.set_run(ended=time.time(), elapsed=round(elapsed, 3), exit_code=outcome.exit_code,
                         message=outcome.message, interrupted=outcome.interrupted, traceback=flow_traceback)


def _work_names(tree: dict[str, Any]) -> list[str]:
    if tree["kind"] == "work":
        return [tree["name"]]
    return [name for child in tree["children"] for name in _work_names(child)]
