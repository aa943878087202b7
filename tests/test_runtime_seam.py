"""The app model reaches the loop that runs it only through `context.Runtime`: it never imports the orchestrator,
and a fake runtime drives it as the orchestrator does."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any, Optional

import pytest

import lit as L
from lit.runtime import context
from lit.runtime.component import Component
from lit.runtime.errors import LitError
from lit.runtime.schedule import Schedule

MODEL_MODULES = ("lit", "lit.structures", "lit.storage", "lit.runtime.app", "lit.runtime.component",
                 "lit.runtime.flow", "lit.runtime.schedule", "lit.runtime.status", "lit.runtime.storage",
                 "lit.runtime.structures", "lit.runtime.work")


def test_model_modules_do_not_import_the_orchestrator() -> None:
    code = (f"import importlib, sys\nfor name in {MODEL_MODULES!r}:\n    importlib.import_module(name)\n"
            "print('\\n'.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "lit.runtime.flow" in loaded
    assert "lit.runtime.orchestrator" not in loaded


class FakeRuntime:
    """Records what the model asks of its runtime."""

    def __init__(self) -> None:
        self.adopted: list[str] = []
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.stopped: list[str] = []
        self.schedules: list[Schedule] = []
        self.awaited: list[str] = []

    def adopt(self, component: Component) -> None:
        self.adopted.append(component.name)

    def call(self, work: L.LightningWork, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls.append((work.name, args, kwargs))

    def stop_work(self, work: L.LightningWork) -> None:
        self.stopped.append(work.name)

    def schedule_added(self, schedule: Schedule) -> None:
        self.schedules.append(schedule)

    def address_awaited(self, work: L.LightningWork) -> None:
        self.awaited.append(work.name)


class Echo(L.LightningWork):
    def run(self, value: int, twice: bool = False) -> None:
        self.value = value


class Root(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.first = Echo()
        self.many = L.structures.List()

    def run(self) -> None:
        self.first.run(1, twice=True)
        self.schedule("hourly")


def test_a_fake_runtime_receives_what_the_flow_asks() -> None:
    app = L.LightningApp(Root())
    root = app.root
    assert isinstance(root, Root)
    fake = FakeRuntime()
    with context.running(fake):
        assert context.current_runtime() is fake
        root.run()
        root.many.append(Echo())  # made in run(): it joins the running app
        root.late = Echo()
        root.first.stop()
    assert context.current_runtime() is None
    assert fake.calls == [("root.first", (1,), {"twice": True})]
    assert fake.adopted == ["root.many.0", "root.late"]
    assert fake.stopped == ["root.first"]
    assert len(fake.schedules) == 1


def test_one_app_per_process_from_any_thread() -> None:
    seen: list[Optional[context.Runtime]] = []
    refused: list[BaseException] = []

    def other_thread() -> None:
        seen.append(context.current_runtime())  # a thread the flow's code starts still finds the running app
        try:
            with context.running(FakeRuntime()):
                pass
        except LitError as exc:
            refused.append(exc)

    fake = FakeRuntime()
    with context.running(fake):
        with pytest.raises(LitError, match="already running"), context.running(FakeRuntime()):
            pass
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert seen == [fake]
    assert len(refused) == 1
    with context.running(fake):  # free again once the first app ended
        pass


def test_the_model_outside_a_running_app() -> None:
    work = Echo()
    with pytest.raises(LitError, match="outside a running app"):
        work.run(1)
    with pytest.raises(LitError, match="outside a running app"):
        work.stop()
