"""Call arguments as Lightning accepts them: any picklable value (tests/remote_apps/pickled_args_app.py), locally;
the same app over SSH and in the fake cloud is in test_ssh_cluster.py and test_aws_run.py."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from lit.runtime import codec
from lit.runtime.errors import StateError
from tests.support import LitCli

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "tests" / "remote_apps" / "pickled_args_app.py"


def check_received(got: list[dict[str, Any]]) -> None:
    """What pickled_args_app's work received in its two calls (the second with other bytes)."""
    assert len(got) == 2, got  # the same arguments on every tick ran once (cache_calls)
    first, second = got
    assert first["blob"] == bytes(range(256)).hex() and first["blob_type"] == "bytes"
    assert second["blob"] == b"other bytes".hex()
    for call in got:
        assert call["config_type"] == "__lit_app__.Config"  # the app's own class, not a dict
        assert call["lr"] == 0.1 and call["layers"] == [2, 3] and call["layers_type"] == "tuple"
        assert call["tags"] == ["a", "b"] and call["tags_type"] == "set"
        assert call["table"] == {"1": "one", "2": "two"} and call["key_types"] == ["int"]


def test_picklable_call_arguments_round_trip_locally(tmp_path: Path) -> None:
    obs = tmp_path / "obs.json"
    cli = LitCli(tmp_path, {**os.environ, "LIT_HOME": str(tmp_path / "home"), "OBS": str(obs),
                            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)})
    result = cli("run", str(APP))
    assert result.returncode == 0, result.stderr
    assert "got 256 bytes and a Config" in result.stdout
    check_received(json.loads(obs.read_text()))


@pytest.mark.parametrize("value", [b"\x00\xff", {1, 2}, {3: "x"}, float("nan"), {"$lit": "not a tag"}, (1, "a")])
def test_a_call_argument_json_cannot_carry_travels_pickled_and_comes_back_equal(value: Any) -> None:
    encoded = codec.encode(value, "arg", call=True)
    text = codec.dumps(encoded)  # still JSON on the wire
    back = codec.decode(json.loads(text))
    if isinstance(value, float):
        assert back != back  # NaN
    elif isinstance(value, tuple):
        assert back == list(value)  # JSON values keep their JSON form, as before
    else:
        assert back == value and type(back) is type(value)


def test_equal_arguments_give_equal_text_so_cached_calls_match() -> None:
    first = codec.dumps(codec.encode({"blob": b"abc", "tags": {"x"}}, "arg", call=True))
    again = codec.dumps(codec.encode({"blob": b"abc", "tags": {"x"}}, "arg", call=True))
    other = codec.dumps(codec.encode({"blob": b"abd", "tags": {"x"}}, "arg", call=True))
    assert first == again and first != other


def test_state_stays_json_and_an_unpicklable_argument_is_one_clear_error() -> None:
    with pytest.raises(StateError, match="JSON"):
        codec.encode(b"bytes", "Work.attr")  # attributes are not call arguments
    with pytest.raises(StateError, match=r"run\(\) argument 0 = .*neither JSON nor picklable"):
        codec.encode(threading.Lock(), "w.run() argument 0", call=True)
