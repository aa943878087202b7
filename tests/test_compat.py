"""docs/lightning-compat.md is the contract: every row of its tables is checked against lit here.

Each row's name maps to a probe: a function that uses the Lightning name the way an app would. The row's
`lit` column decides what the probe must do:

- supported: run without raising and without any warning (the probe asserts the behaviour itself);
- ignored: emit a LightningCompatWarning;
- rejected / planned: raise LightningCompatError.

A row without a probe, or a probe without a row, fails the suite, so the table and the code cannot drift.
Rows listed in GAPS are what lit should do but does not yet: they are strict xfails until the fix lands.
Everything here is in-process; no app is started.
"""

from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

import lit as L
from lit.runtime import app as app_module
from lit.runtime import compat, context
from lit.runtime.compat import LightningCompatWarning
from lit.runtime.errors import BadInput, LightningCompatError, LitError
from lit.runtime.status import WorkStageStatus, WorkStatus

DOC = Path(__file__).resolve().parents[1] / "docs" / "lightning-compat.md"
HEADER = ["Lightning name", "lit", "notes"]
STATES = {"supported", "ignored", "rejected", "planned"}


def parse_table(text: str) -> list[tuple[str, str, str]]:
    """The (name, state, notes) rows of every table whose header is `Lightning name | lit | notes`."""
    rows: list[tuple[str, str, str]] = []
    in_table = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells == HEADER:
            in_table = True
            continue
        if not in_table or all(set(cell) <= set("-: ") for cell in cells):
            continue
        assert len(cells) == 3, f"line {number}: expected 3 cells, got {cells}"
        match = re.fullmatch(r"`([^`]+)`", cells[0])
        assert match, f"line {number}: the name must be one backticked name, got {cells[0]!r}"
        rows.append((match.group(1), cells[1], cells[2]))
    return rows


ROWS = parse_table(DOC.read_text(encoding="utf-8"))
TABLE = {name: state for name, state, _ in ROWS}


# -- helpers ----------------------------------------------------------------------------------------
class _Work(L.LightningWork):
    def run(self, *args: Any, **kwargs: Any) -> None:
        pass


class _Flow(L.LightningFlow):
    def run(self) -> None:
        pass


def _with_stage(work: L.LightningWork, stage: str, reason: str | None = None) -> L.LightningWork:
    object.__setattr__(work, "_lit_status", WorkStatus.now(stage, reason=reason))
    return work


def _tree() -> tuple[_Flow, _Flow]:
    """root (works: a, ws[0], ws[1]) with a child flow `child` (work: b)."""
    root, child = _Flow(), _Flow()
    child.b = _Work()
    root.a = _Work()
    root.child = child
    root.ws = L.structures.List(_Work(), _Work())
    L.LightningApp(root)
    return root, child


def _frontend(name: str) -> Any:
    return getattr(importlib.import_module("lit.app.frontend"), name)


def _storage(name: str) -> Any:
    from lit import storage

    value = getattr(importlib.import_module("lit.app.storage"), name)
    assert getattr(storage, name) is value
    return value


# -- probes: one per row ----------------------------------------------------------------------------
PROBES: dict[str, Callable[[], Any]] = {}


def probe(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def register(fn: Callable[[], Any]) -> Callable[[], Any]:
        assert name not in PROBES, f"two probes for {name}"
        PROBES[name] = fn
        return fn

    return register


def simple(name: str, fn: Callable[[], Any]) -> None:
    probe(name)(fn)


# top level
@probe("L.LightningApp")
def _() -> None:
    import lit.app

    assert L.LightningApp is lit.app.LightningApp is L.App
    assert isinstance(L.LightningApp(_Flow()), L.LightningApp)


@probe("L.LightningFlow")
def _() -> None:
    import lit.app

    assert L.LightningFlow is lit.app.LightningFlow is L.Flow
    assert _Flow().run() is None


@probe("L.LightningWork")
def _() -> None:
    import lit.app

    assert L.LightningWork is lit.app.LightningWork is L.Work
    assert isinstance(_Work(), L.LightningWork)


@probe("L.CloudCompute")
def _() -> None:
    import lit.app

    assert L.CloudCompute is lit.app.CloudCompute
    assert L.CloudCompute().name == "default"


simple("L.BuildConfig", lambda: L.BuildConfig(requirements=["torch"], image="python:3.11"))
simple("L.LightningPlugin", lambda: L.LightningPlugin())


@probe("L.structures.List")
def _() -> None:
    import lit.app.structures

    assert L.structures.List is lit.app.structures.List
    root = _Flow()
    root.ws = L.structures.List(_Work())
    root.ws.append(_Work())
    assert len(root.ws) == 2
    assert [w.name for w in root.ws] == ["root.ws.0", "root.ws.1"]
    assert root.ws[1].name == "root.ws.1"


@probe("L.structures.Dict")
def _() -> None:
    import lit.app.structures

    assert L.structures.Dict is lit.app.structures.Dict
    root = _Flow()
    root.d = L.structures.Dict(a=_Work())
    root.d["b"] = _Work()
    assert sorted(root.d.keys()) == ["a", "b"]
    assert root.d["b"].name == "root.d.b"
    assert "a" in root.d


@probe("L.structures.List.works")
def _() -> None:
    items = L.structures.List(_Work(), _Flow())
    assert items.works == [items[0]]


@probe("L.structures.List.flows")
def _() -> None:
    root = _Flow()
    root.items = L.structures.List(_Work(), _Flow())
    assert list(root.items.flows.values()) == [root.items[1]]


@probe("L.structures.Dict.works")
def _() -> None:
    items = L.structures.Dict(w=_Work(), f=_Flow())
    assert items.works == [items["w"]]


@probe("L.structures.Dict.flows")
def _() -> None:
    root = _Flow()
    root.items = L.structures.Dict(w=_Work(), f=_Flow())
    assert list(root.items.flows.values()) == [root.items["f"]]


simple("L.storage.Path", lambda: _storage("Path")("data/model.pt"))
simple("L.storage.Drive", lambda: _storage("Drive")("lit://drive"))
simple("L.storage.Payload", lambda: _storage("Payload")({"a": 1}))
simple("L.storage.FileSystem", lambda: _storage("FileSystem")())
simple("L.storage.Mount", lambda: _storage("Mount")(source="s3://bucket/data/", mount_path="/data"))
@probe("L.frontend.Frontend")
def _() -> None:
    class Mine(_frontend("Frontend")):  # type: ignore[misc]
        def start_server(self, host: str, port: int, root_path: str = "") -> None:
            pass

        def stop_server(self) -> None:
            pass

    Mine()


@probe("L.frontend.StaticWebFrontend")
def _() -> None:
    import tempfile

    from lit.runtime.ui.layout import collect_layout

    static = _frontend("StaticWebFrontend")
    assert isinstance(static("ui"), _frontend("Frontend")) and static("ui").serve_dir == "ui"

    class Page(_Flow):
        def configure_layout(self) -> Any:
            return static("ui")

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "ui").mkdir()
        (tab,) = collect_layout(Page(), Path(folder))
        assert (tab.kind, tab.folder) == ("static", (Path(folder) / "ui").resolve())
        (tab,) = collect_layout(Page(), Path(folder) / "elsewhere", cwd=Path(folder / Path("nowhere")))
        assert tab.kind == "error" and "no folder 'ui'" in tab.error


simple("L.frontend.StreamlitFrontend", lambda: _frontend("StreamlitFrontend")(render_fn=print))
simple("L.frontend.PanelFrontend", lambda: _frontend("PanelFrontend")(entry_point="ui.py"))
simple("L.frontend.JustPyFrontend", lambda: _frontend("JustPyFrontend")(typer=print))


# LightningApp
@probe("LightningApp(root=...)")
def _() -> None:
    flow = _Flow()
    assert L.LightningApp(root=flow).root is flow
    work = _Work()
    L.LightningApp(root=work)
    assert work.name == "root.work"


@probe("LightningApp.root")
def _() -> None:
    flow = _Flow()
    assert L.LightningApp(flow).root is flow
    assert flow.name == "root"


@probe("LightningApp.get_component_by_name()")
def _() -> None:
    root, child = _tree()
    app = app_module.created[-1]
    assert app.get_component_by_name("root") is root
    assert app.get_component_by_name("root.child.b") is child.b
    assert app.get_component_by_name("root.ws.1") is root.ws[1]


simple("LightningApp(flow_cloud_compute=...)", lambda: L.LightningApp(_Flow(), flow_cloud_compute=L.CloudCompute()))
@probe("LightningApp(log_level=...)")
def _() -> None:
    assert L.LightningApp(_Flow(), log_level="debug").log_level == "debug"
    with pytest.raises(ValueError, match="log_level"):
        L.LightningApp(_Flow(), log_level="verbose")
simple("LightningApp(info=...)", lambda: L.LightningApp(_Flow(), info={"title": "My app"}))
simple("LightningApp(root_path=...)", lambda: L.LightningApp(_Flow(), root_path="/my-app"))


# LightningWork arguments
@probe("LightningWork(parallel=...)")
def _() -> None:
    assert _Work(parallel=True).parallel is True
    assert _Work().parallel is False


@probe("LightningWork(cache_calls=...)")
def _() -> None:
    assert _Work(cache_calls=False).cache_calls is False
    assert _Work().cache_calls is True


@probe("LightningWork(raise_exception=...)")
def _() -> None:
    assert _Work(raise_exception=False).raise_exception is False


@probe("LightningWork(host=...)")
def _() -> None:
    assert _Work(host="0.0.0.0").host == "0.0.0.0"


@probe("LightningWork(port=...)")
def _() -> None:
    assert _Work(port=8123).port == 8123
    with pytest.raises(ValueError):
        _Work(port=70000)


@probe("LightningWork(cloud_compute=...)")
def _() -> None:
    assert _Work(cloud_compute=L.CloudCompute("gpu")).cloud_compute == L.CloudCompute("gpu")


@probe("LightningWork(start_with_flow=...)")
def _() -> None:
    assert _Work(start_with_flow=False).start_with_flow is False


simple("LightningWork(local_build_config=...)", lambda: _Work(local_build_config=object()))
simple("LightningWork(cloud_build_config=...)", lambda: _Work(cloud_build_config=object()))


@probe("LightningWork(run_once=...)")
def _() -> None:
    assert _Work(run_once=False).cache_calls is False


# LightningWork methods, hooks and properties
@probe("LightningWork.run()")
def _() -> None:
    work = _Work()
    assert getattr(type(work).run, "_lit_wrapped", False)
    with pytest.raises(BadInput, match="outside a running app"):
        work.run()


@probe("LightningWork.stop()")
def _() -> None:
    with pytest.raises(LitError, match="outside a running app"):
        _Work().stop()


@probe("LightningWork.delete()")
def _() -> None:
    with pytest.raises(LitError, match="outside a running app"):
        _Work().delete()


simple("LightningWork.start()", lambda: _Work().start())


@probe("LightningWork.on_exit()")
def _() -> None:
    class Cleans(_Work):
        def on_exit(self) -> None:
            pass

    assert L.LightningWork.on_exit(Cleans()) is None


@probe("LightningWork.on_start()")
def _() -> None:
    class Starts(_Work):
        def on_start(self) -> None:
            pass

    assert L.LightningWork.on_start(Starts()) is None


@probe("LightningWork.on_exception()")
def _() -> None:
    class Handles(_Work):
        def on_exception(self, exception: BaseException) -> None:
            pass


@probe("LightningWork.configure_layout()")
def _() -> None:
    from lit.runtime.ui.layout import collect_layout

    class WithUI(_Work):
        def configure_layout(self) -> str:
            return "https://example.com/board"

    class Own(_Work):
        def configure_layout(self) -> str:
            return self.url + "/docs"  # "" + "/docs" before the work started: its own server, at /docs

    class Plain(_Work):
        pass

    class Root(_Flow):
        def __init__(self) -> None:
            super().__init__()
            self.ui, self.own, self.plain = WithUI(), Own(), Plain()

        def configure_layout(self) -> list:
            return [{"name": n, "content": getattr(self, n)} for n in ("ui", "own", "plain")]

    root = Root()
    L.LightningApp(root)
    tabs = [tab.to_json() for tab in collect_layout(root, Path.cwd())]
    assert tabs == [{"id": "ui", "name": "ui", "kind": "url", "src": "https://example.com/board"},
                    {"id": "own", "name": "own", "kind": "work", "src": "app/own/docs", "work": "own"},
                    {"id": "plain", "name": "plain", "kind": "work", "src": "app/plain/", "work": "plain"}]


@probe("LightningWork.status")
def _() -> None:
    work = _Work()
    assert isinstance(work.status, WorkStatus)
    assert work.status.stage == WorkStageStatus.NOT_STARTED == "not_started"


@probe("LightningWork.statuses")
def _() -> None:
    assert _Work().statuses == []
    work = _with_stage(_Work(), WorkStageStatus.RUNNING)
    assert work.statuses[-1] == work.status


def _stage_probe(prop: str, stage: str) -> Callable[[], None]:
    def check() -> None:
        assert getattr(_Work(), prop) is False
        for other in (
            WorkStageStatus.PENDING,
            WorkStageStatus.RUNNING,
            WorkStageStatus.SUCCEEDED,
            WorkStageStatus.FAILED,
            WorkStageStatus.STOPPED,
        ):
            assert getattr(_with_stage(_Work(), other), prop) is (other == stage), (prop, other)

    return check


simple("LightningWork.is_pending", _stage_probe("is_pending", WorkStageStatus.PENDING))
simple("LightningWork.is_running", _stage_probe("is_running", WorkStageStatus.RUNNING))
simple("LightningWork.has_succeeded", _stage_probe("has_succeeded", WorkStageStatus.SUCCEEDED))
simple("LightningWork.has_failed", _stage_probe("has_failed", WorkStageStatus.FAILED))
simple("LightningWork.has_stopped", _stage_probe("has_stopped", WorkStageStatus.STOPPED))


@probe("LightningWork.has_started")
def _() -> None:
    assert _Work().has_started is False
    for stage in (WorkStageStatus.PENDING, WorkStageStatus.RUNNING, WorkStageStatus.SUCCEEDED):
        assert _with_stage(_Work(), stage).has_started is True


@probe("LightningWork.has_timeout")
def _() -> None:
    assert _Work().has_timeout is False
    assert _with_stage(_Work(), WorkStageStatus.FAILED, reason="timeout").has_timeout is True


@probe("LightningWork.num_timeouts")
def _() -> None:
    assert _Work().num_timeouts == 0


@probe("LightningWork.num_successes")
def _() -> None:
    assert _Work().num_successes == 0


@probe("LightningWork.name")
def _() -> None:
    root, child = _tree()
    assert root.a.name == "root.a"
    assert child.b.name == "root.child.b"
    assert _Work().name == ""


@probe("LightningWork.display_name")
def _() -> None:
    work = _Work()
    assert isinstance(work.display_name, str)
    work.display_name = "Trainer"
    assert work.display_name == "Trainer"
    assert "display_name" not in work.state_vars


@probe("LightningWork.host")
def _() -> None:
    assert _Work().host == "127.0.0.1"


@probe("LightningWork.port")
def _() -> None:
    assert _Work().port is None
    assert _Work(port=9000).port == 9000


@probe("LightningWork.url")
def _() -> None:
    assert _Work(port=9000).url == ""


@probe("LightningWork.internal_ip")
def _() -> None:
    assert _Work().internal_ip == ""


@probe("LightningWork.public_ip")
def _() -> None:
    assert _Work().public_ip == ""


@probe("LightningWork.cloud_compute")
def _() -> None:
    work = _Work()
    assert work.cloud_compute == L.CloudCompute()
    work.cloud_compute = L.CloudCompute("cpu-medium")
    assert work.cloud_compute.name == "cpu-medium"
    started = _with_stage(_Work(), WorkStageStatus.RUNNING)
    with pytest.raises(LitError):
        started.cloud_compute = L.CloudCompute("gpu")


@probe("LightningWork.parallel")
def _() -> None:
    assert _Work(parallel=True).parallel is True


@probe("LightningWork.cache_calls")
def _() -> None:
    assert _Work(cache_calls=False).cache_calls is False


@probe("LightningWork.lightningignore")
def _() -> None:
    work = _Work()
    work.lightningignore = ("data",)
    assert "lightningignore" not in work.state_vars


@probe("LightningWork.state")
def _() -> None:
    work = _Work()
    work.counter = 3
    assert work.state["vars"] == {"counter": 3}


@probe("LightningWork.state_vars")
def _() -> None:
    work = _Work()
    work.counter = 3
    assert work.state_vars == {"vars": {"counter": 3}}


# LightningFlow
@probe("LightningFlow.run()")
def _() -> None:
    class Counts(L.LightningFlow):
        def __init__(self) -> None:
            super().__init__()
            self.counter = 0

        def run(self) -> None:
            self.counter += 1

    flow = Counts()
    flow.run()
    assert flow.counter == 1


@probe("LightningFlow.schedule()")
def _() -> None:
    flow = _Flow()
    assert flow.schedule("hourly") is True
    assert flow.schedule("*/5 * * * *", user_key="five") is True
    with pytest.raises(ValueError):
        flow.schedule("not a cron pattern")


@probe("LightningFlow.stop()")
def _() -> None:
    with pytest.raises(context.AppStop) as stop:
        _Flow().stop("done")
    assert (stop.value.failed, stop.value.message) == (False, "done")


@probe("LightningFlow.fail()")
def _() -> None:
    with pytest.raises(context.AppStop) as stop:
        _Flow().fail("broken")
    assert (stop.value.failed, stop.value.message) == (True, "broken")


@probe("LightningFlow.works()")
def _() -> None:
    root, _ = _tree()
    assert {w.name for w in root.works()} == {"root.a", "root.ws.0", "root.ws.1", "root.child.b"}
    assert {w.name for w in root.works(recurse=False)} == {"root.a", "root.ws.0", "root.ws.1"}


@probe("LightningFlow.named_works()")
def _() -> None:
    root, child = _tree()
    assert ("root.child.b", child.b) in root.named_works()
    assert all(name == work.name for name, work in root.named_works())


@probe("LightningFlow.flows")
def _() -> None:
    root, child = _tree()
    assert root.flows == {"root.child": child}


@probe("LightningFlow.stop_works()")
def _() -> None:
    _Flow().stop_works([])
    with pytest.raises(LitError, match="outside a running app"):
        _Flow().stop_works([_Work()])


@probe("LightningFlow.name")
def _() -> None:
    root, child = _tree()
    assert (root.name, child.name) == ("root", "root.child")


@probe("LightningFlow.state")
def _() -> None:
    flow = _Flow()
    flow.counter = 1
    assert flow.state["vars"] == {"counter": 1}


@probe("LightningFlow.state_vars")
def _() -> None:
    flow = _Flow()
    flow.counter = 1
    assert flow.state_vars["vars"] == {"counter": 1}


@probe("LightningFlow.ready")
def _() -> None:
    assert _Flow().ready is True

    class Ready(_Flow):
        @property
        def ready(self) -> bool:
            return False


@probe("LightningFlow.lightningignore")
def _() -> None:
    flow = _Flow()
    flow.lightningignore = ("data",)
    assert "lightningignore" not in flow.state_vars


@probe("LightningFlow.load_state_dict()")
def _() -> None:
    class Reloads(_Flow):
        def load_state_dict(self, flow_state: Any, children_states: Any, strict: bool = True) -> None:
            pass


simple("LightningFlow.set_state()", lambda: _Flow().set_state({"vars": {"counter": 1}}))
simple("LightningFlow.experimental_iterate()", lambda: list(_Flow().experimental_iterate(range(3))))


@probe("LightningFlow.configure_layout()")
def _() -> None:
    from lit.runtime.ui.layout import collect_layout

    class Child(_Flow):
        def configure_layout(self) -> list:
            return [{"name": "A", "content": "https://a.example"}, {"name": "B", "content": "https://b.example"}]

    class Broken(_Flow):
        def configure_layout(self) -> list:
            raise RuntimeError("no layout today\nsecond line")

    class WithUI(_Flow):
        def __init__(self) -> None:
            super().__init__()
            self.child, self.broken = Child(), Broken()

        def configure_layout(self) -> list:
            return [{"name": "Kid", "content": self.child}, {"name": "Oops", "content": self.broken}]

    root = WithUI()
    L.LightningApp(root)
    tabs = [(tab.name, tab.kind, tab.url or tab.error) for tab in collect_layout(root, Path.cwd())]
    assert tabs == [("Kid / A", "url", "https://a.example"), ("Kid / B", "url", "https://b.example"),
                    ("Oops", "error", "RuntimeError: no layout today")]


@probe("LightningFlow.configure_commands()")
def _() -> None:
    class WithCommands(_Flow):
        def configure_commands(self) -> list:
            return []


@probe("LightningFlow.configure_api()")
def _() -> None:
    class WithAPI(_Flow):
        def configure_api(self) -> list:
            return []


# CloudCompute arguments
@probe("CloudCompute(name=...)")
def _() -> None:
    assert L.CloudCompute("GPU").name == "gpu"
    assert L.CloudCompute(name="cpu-medium").name == "cpu-medium"
    with pytest.raises(ValueError, match="Valid names"):
        L.CloudCompute("tpu-pod")


@probe("CloudCompute(disk_size=...)")
def _() -> None:
    assert L.CloudCompute(disk_size=50).disk_size == 50


@probe("CloudCompute(idle_timeout=...)")
def _() -> None:
    assert L.CloudCompute(idle_timeout=60).idle_timeout == 60


simple("CloudCompute(interruptible=...)", lambda: L.CloudCompute("gpu", interruptible=True))


simple("CloudCompute(shm_size=...)", lambda: L.CloudCompute("gpu", shm_size=1024))
simple("CloudCompute(mounts=...)", lambda: L.CloudCompute(mounts=[object()]))
simple("CloudCompute(colocation_group_id=...)", lambda: L.CloudCompute(colocation_group_id="group-a"))
simple("CloudCompute(wait_timeout=...)", lambda: L.CloudCompute(wait_timeout=600))


# -- gaps: what lit should do (as the table says) but does not yet ----------------------------------
GAPS: dict[str, str] = {}


# -- the checks -------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Warnings fire once per process per name: forget them around each test. Apps made here stay here."""
    compat._warned.clear()
    monkeypatch.setattr(app_module, "created", [])
    yield
    compat._warned.clear()


def _params() -> list[Any]:
    params = []
    for name, state, _ in ROWS:
        marks = [pytest.mark.xfail(strict=True, reason=f"gap: {GAPS[name]}")] if name in GAPS else []
        params.append(pytest.param(name, state, id=name, marks=marks))
    return params


@pytest.mark.parametrize(("name", "state"), _params())
def test_row(name: str, state: str) -> None:
    check = PROBES.get(name)
    if check is None:
        pytest.fail(f"no probe for the row {name!r}")
    if state == "supported":
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check()
    elif state == "ignored":
        with pytest.warns(LightningCompatWarning):
            check()
    elif state in ("rejected", "planned"):
        with pytest.raises(LightningCompatError):
            check()
    else:
        pytest.fail(f"{name}: unknown state {state!r}")


def test_table_is_well_formed() -> None:
    names = [name for name, _, _ in ROWS]
    assert len(names) > 50
    assert len(names) == len(set(names)), "a name appears in two rows"
    bad = {name: state for name, state, _ in ROWS if state not in STATES}
    assert not bad, f"the lit column must be one of {sorted(STATES)}: {bad}"


def test_every_row_has_a_probe_and_every_probe_a_row() -> None:
    assert sorted(set(TABLE) - set(PROBES)) == [], "rows without a probe"
    assert sorted(set(PROBES) - set(TABLE)) == [], "probes without a row in docs/lightning-compat.md"


def test_gaps_are_rows_and_noted() -> None:
    assert sorted(set(GAPS) - set(TABLE)) == []
    notes = {name: note for name, _, note in ROWS}
    for name in GAPS:
        assert "Not yet" in notes[name] or "not yet" in notes[name] or _shares_note(name, notes), name


def _shares_note(name: str, notes: dict[str, str]) -> bool:
    """A row whose note is `As <other>.` inherits the other row's `Not yet`."""
    match = re.fullmatch(r"As `([^`]+)`\.?", notes[name])
    return bool(match) and "Not yet" in notes.get(match.group(1), "")


def test_planned_rows_say_so_in_the_error() -> None:
    from lit.app.storage import FileSystem

    with pytest.raises(LightningCompatError, match=r"use lit\.storage\.Path, Drive or Payload"):
        FileSystem()


def test_warning_fires_once_per_name() -> None:
    with pytest.warns(LightningCompatWarning, match=r"CloudCompute\(shm_size=\.\.\.\)"):
        L.CloudCompute(shm_size=512)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        L.CloudCompute(shm_size=512)


# lit.components: the script works are exercised end to end in test_components_scripts.py; the probes check the
# names and what the constructors keep.
def _component(name: str) -> Any:
    import lit.app.components
    import lit.components

    assert getattr(lit.components, name) is getattr(lit.app.components, name)
    return getattr(lit.components, name)


@probe("L.components.PopenPythonScript")
def _() -> None:
    script = Path(__file__).parent / "script_apps" / "scripts" / "count.py"
    work = _component("PopenPythonScript")(script, script_args="--a 1", env={"X": "1"})
    assert (work.script_path, work.script_args, work.env, work.exit_code) == (str(script), ["--a", "1"], {"X": "1"},
                                                                              None)
    with pytest.raises(FileNotFoundError, match=r"no-such-script\.py"):
        _component("PopenPythonScript")("no-such-script.py")


@probe("L.components.TracerPythonScript")
def _() -> None:
    script = Path(__file__).parent / "script_apps" / "scripts" / "train.py"
    work = _component("TracerPythonScript")(script, outputs=["best_score"])
    assert work.outputs == ["best_score"] and work.best_score is None
    assert isinstance(work.configure_tracer(), _component("Tracer"))


@probe("L.components.PythonServer")
def _() -> None:
    class Echo(_component("PythonServer")):  # type: ignore[misc]
        def predict(self, request: Any) -> Any:
            return {"prediction": request.payload}

    server = Echo()
    assert server.parallel is True  # a server always runs beside the flow, as in Lightning
    with pytest.raises(TypeError):
        _component("PythonServer")()  # predict() is abstract


@probe("L.components.Text")
def _() -> None:
    assert _component("Text")(text="hi").text == "hi"


@probe("L.components.Number")
def _() -> None:
    assert _component("Number")(prediction=0.5).prediction == 0.5


@probe("L.components.Image")
def _() -> None:
    assert _component("Image").get_sample_data()["image"]  # a base64 image


@probe("L.components.Category")
def _() -> None:
    assert _component("Category")(category=3).category == 3


@probe("L.components.MultiNode")
def _() -> None:
    flow = _component("MultiNode")(_Work, num_nodes=3, cloud_compute=L.CloudCompute("cpu"))
    assert len(flow.ws) == 3 and all(work.parallel for work in flow.ws)
    with pytest.raises(ValueError, match="num_nodes"):
        _component("MultiNode")(_Work, num_nodes=0, cloud_compute=L.CloudCompute("cpu"))


@probe("L.components.PyTorchSpawnMultiNode")
def _() -> None:
    flow = _component("PyTorchSpawnMultiNode")(_Work, L.CloudCompute("cpu"), 2)
    assert len(flow.ws) == 2 and isinstance(flow.ws[0], _Work)


@probe("L.components.Code")
def _() -> None:
    script = Path(__file__).parent / "script_apps" / "scripts" / "train.py"
    _component("TracerPythonScript")(script, code={"drive": None, "name": "code.tar.gz"})


for _name in ("AutoScaler", "ColdStartProxy", "Database", "DatabaseClient", "ServeGradio", "ServeStreamlit",
              "ModelInferenceAPI", "FabricMultiNode", "LightningTrainerMultiNode", "LightningTrainerScript",
              "PyTorchLightningScriptRunner"):
    simple(f"L.components.{_name}", lambda name=_name: _component(name)())

# Lightning 2.3.2's lightning.app.components.__all__
LIGHTNING_COMPONENTS = (
    "AutoScaler", "ColdStartProxy", "DatabaseClient", "Database", "PopenPythonScript", "Code", "TracerPythonScript",
    "ServeGradio", "ServeStreamlit", "ModelInferenceAPI", "PythonServer", "Image", "Number", "Category", "Text",
    "MultiNode", "FabricMultiNode", "LightningTrainerScript", "PyTorchLightningScriptRunner", "PyTorchSpawnMultiNode",
    "LightningTrainerMultiNode",
)


def test_every_lightning_component_is_a_row_and_a_name_of_lit_components() -> None:
    import lit.components

    assert sorted(n for n in LIGHTNING_COMPONENTS if f"L.components.{n}" not in TABLE) == []
    assert sorted(n for n in LIGHTNING_COMPONENTS if n not in lit.components.__all__) == []


def test_every_supported_row_is_exercised_not_only_accepted() -> None:
    """A supported row's probe asserts what the name does, or a test or example elsewhere (an app run end to end)
    uses the name: accepting an argument without a failure is not support."""
    import inspect

    here = Path(__file__).resolve()
    elsewhere = "\n".join(p.read_text(encoding="utf-8") for folder in ("tests", "examples")
                          for p in (here.parents[1] / folder).rglob("*.py") if p != here)
    unexercised = []
    for name, state, _ in ROWS:
        if state != "supported":
            continue
        source = inspect.getsource(PROBES[name])
        word = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", name)[-1]
        if "assert" not in source and "pytest.raises" not in source and not re.search(rf"\b{word}\b", elsewhere):
            unexercised.append(name)
    assert unexercised == []


# -- the one-rename import story --------------------------------------------------------------------
def test_one_rename_imports() -> None:
    import lit.app
    import lit.storage
    from lit.app import BuildConfig, CloudCompute, LightningApp, LightningFlow, LightningWork
    from lit.app.storage import Drive, Path, Payload
    from lit.app.structures import Dict, List

    assert (LightningApp, LightningFlow, LightningWork) == (L.LightningApp, L.LightningFlow, L.LightningWork)
    assert (CloudCompute, BuildConfig) == (L.CloudCompute, L.BuildConfig)
    assert (Path, Drive, Payload) == (lit.storage.Path, lit.storage.Drive, lit.storage.Payload)
    assert (List, Dict) == (L.structures.List, L.structures.Dict)
    assert lit.app.storage.Path is Path
    assert lit.app.structures.List is L.structures.List
