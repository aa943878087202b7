"""Unit tests of the app model, in-process (no processes started)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

import lit as L
from lit.runtime import codec
from lit.runtime.errors import BadInput, StateError
from lit.runtime.schedule import Schedule, normalize


class Echo(L.LightningWork):
    def run(self, message: str) -> None:
        print(message)


class Tree(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.a = Echo()
        self.child = Child()
        self.items = L.structures.List(Echo(), Echo())
        self.table = L.structures.Dict(x=Echo())


class Child(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.b = Echo(cloud_compute=L.CloudCompute("gpu"))


def test_component_names_follow_the_tree() -> None:
    app = L.LightningApp(Tree())
    names = [name for name, _ in app.root.named_works()]
    assert names == ["root.a", "root.child.b", "root.items.0", "root.items.1", "root.table.x"]
    assert app.root.child.name == "root.child"
    assert list(app.root.flows) == ["root.child"]
    assert app.find("root.items.1") is app.root.items[1]
    assert app.find("root.table.x") is app.root.table["x"]
    assert app.find("root.nope") is None
    assert [w.name for w in app.root.works(recurse=False)] == ["root.a", "root.items.0", "root.items.1",
                                                              "root.table.x"]


def test_a_single_work_can_be_the_root() -> None:
    app = L.LightningApp(Echo())
    assert [name for name, _ in app.root.named_works()] == ["root.work"]


def test_cloud_compute_names_and_errors() -> None:
    assert L.CloudCompute("GPU").name == "gpu"
    assert L.CloudCompute("gpu").gpus == 1
    assert L.CloudCompute("gpu-fast-multi").spec.gpus == 4
    assert L.CloudCompute(clusters=["cluster-a"]).clusters == ("cluster-a",)
    with pytest.raises(ValueError, match=r"Unknown CloudCompute name 'tpu'.*cpu-small.*gpu-fast-multi"):
        L.CloudCompute("tpu")
    with pytest.raises(ValueError, match="disk_size"):
        L.CloudCompute("cpu", disk_size=-1)
    compute = L.CloudCompute("cpu")
    with pytest.raises(AttributeError):
        compute.name = "gpu"  # type: ignore[misc]


def test_state_must_be_json_and_the_error_names_the_attribute() -> None:
    flow = Tree()
    flow.count = 1
    flow.nested = {"a": [1, 2.5, None, True]}
    with pytest.raises(StateError, match=r"Tree\.bad = \{1\}"):
        flow.bad = {1}
    work = Echo()
    with pytest.raises(StateError, match=r"Echo\.model"):
        work.model = object()
    with pytest.raises(StateError, match="non-string key"):
        work.table = {1: "x"}
    work._private = object()  # private attributes are not state


def test_status_properties_start_not_started() -> None:
    work = Echo(parallel=True, cache_calls=False, raise_exception=False)
    assert (work.parallel, work.cache_calls, work.raise_exception) == (True, False, False)
    assert work.status.stage == "not_started"
    assert not work.has_started and not work.is_running and not work.has_succeeded
    assert work.host == "127.0.0.1" and work.port is None


def test_calling_run_outside_an_app_is_a_clear_error() -> None:
    with pytest.raises(BadInput, match="outside a running app"):
        Echo().run("hi")


def test_codec_round_trips_typed_values() -> None:
    value = {"compute": L.CloudCompute("gpu"), "list": [1, "a", None]}
    encoded = codec.encode(value)
    assert encoded["compute"]["$lit"] == "compute"
    assert codec.decode(encoded) == value
    with pytest.raises(StateError, match="reserved key"):
        codec.encode({"$lit": 1})
    with pytest.raises(StateError, match="NaN"):
        codec.encode(float("nan"))


def test_schedule_aliases_and_invalid_patterns() -> None:
    assert normalize("hourly") == "0 * * * *"
    assert normalize("@daily") == "0 0 * * *"
    assert normalize("* * * * * */5") == "* * * * * */5"
    with pytest.raises(ValueError, match="'every tuesday'"):
        normalize("every tuesday")
    with pytest.raises(ValueError, match="61"):
        normalize("61 * * * *")


def test_schedule_fires_once_per_event_and_collapses_missed_events() -> None:
    start = datetime.now().replace(microsecond=0)
    schedule = Schedule("* * * * * *", start)  # every second, seconds last
    first = schedule.next_fire
    assert first == pytest.approx((start + timedelta(seconds=1)).timestamp())
    assert not schedule.advance(first - 0.5)
    assert schedule.advance(first + 10.2)  # ten events missed while busy: one True
    assert schedule.fired == 1
    assert schedule.next_fire == pytest.approx(first + 11)
    assert schedule.consume() and schedule.consume()  # True for the whole tick ...
    schedule.end_tick()
    assert not schedule.consume()  # ... and only that tick


def test_flow_schedule_first_call_true_and_bad_pattern_names_it() -> None:
    flow = L.LightningFlow()
    results = [flow.schedule("hourly") for _ in range(3)]  # one call site: one schedule
    assert results == [True, False, False]
    assert flow.schedule("hourly") is True  # another call site is its own schedule
    assert flow.schedule("daily", user_key="k") is True
    assert flow.schedule("daily", user_key="k") is False  # the same user_key is the same schedule
    with pytest.raises(ValueError, match="'not a cron'"):
        flow.schedule("not a cron")


def test_timestamps_are_recent() -> None:
    assert abs(L.WorkStatus.now("running").timestamp - time.time()) < 5
