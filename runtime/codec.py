"""The state encoding: JSON, plus tagged values for types that must survive the trip (paths, compute).

A typed value is encoded as {"$lit": TAG, "v": PAYLOAD}. Plain dicts may not use the "$lit" key.

Call arguments may be any picklable value, as in Lightning (bytes, arrays, dataclasses): what JSON cannot carry
travels pickled, as {"$lit": "pickle", "v": BASE64}. Pickle is safe here for the same reason Payload is: it is
the user's own code talking to itself on the user's own machines. Work and flow attributes stay JSON.
"""

from __future__ import annotations

import base64
import json
import math
import pickle
from typing import Any, Callable

from .errors import StateError

TAG = "$lit"

_Encoder = Callable[[Any], Any]
_Decoder = Callable[[Any], Any]
_by_type: dict[type, tuple[str, _Encoder]] = {}
_by_tag: dict[str, _Decoder] = {}
PICKLE_TAG = "pickle"


def register_type(tag: str, cls: type, to_json: _Encoder, from_json: _Decoder) -> None:
    """Let values of `cls` travel as state, encoded as {"$lit": tag, "v": to_json(value)}."""
    _by_type[cls] = (tag, to_json)
    _by_tag[tag] = from_json


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} (type {type(value).__name__})"


def encode(value: Any, where: str = "value", call: bool = False) -> Any:
    """Return a JSON-ready form of `value`, or raise StateError naming `where` and the bad part. With `call` (a
    call argument), a part JSON cannot carry travels pickled instead."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            if call:
                return _pickled(value, where)
            raise StateError(f"{where} = {value!r} is not JSON-serializable (NaN and infinity are not JSON)")
        return value
    if isinstance(value, (list, tuple)):
        return [encode(item, f"{where}[{i}]", call) for i, item in enumerate(value)]
    if isinstance(value, dict):
        if call and any(not isinstance(key, str) or key == TAG for key in value):
            return _pickled(value, where)
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise StateError(f"{where} has a non-string key {key!r}: state dicts need string keys")
            if key == TAG:
                raise StateError(f"{where} uses the reserved key {TAG!r}")
            out[key] = encode(item, f"{where}[{key!r}]", call)
        return out
    typed = _by_type.get(type(value))
    if typed is not None:
        tag, to_json = typed
        return {TAG: tag, "v": to_json(value)}
    if call:
        return _pickled(value, where)
    raise StateError(f"{where} = {_describe(value)} is not JSON-serializable; work and flow attributes must be "
                     "JSON values (dict, list, str, int, float, bool, None), lit.Path or lit.Payload (which holds "
                     "any picklable value)")


def _pickled(value: Any, where: str) -> dict[str, Any]:
    try:
        data = pickle.dumps(value, protocol=4)  # 4: every Python lit supports (3.9+) reads it
    except Exception as exc:  # pickling raises whatever the object's __reduce__ raises
        raise StateError(f"{where} = {_describe(value)} cannot be sent to the work: it is neither JSON nor "
                         f"picklable ({type(exc).__name__}: {exc})") from None
    return {TAG: PICKLE_TAG, "v": base64.b64encode(data).decode("ascii")}


def _unpickled(data: Any) -> Any:
    return pickle.loads(base64.b64decode(data))  # the user's own values, from the user's own lit


_by_tag[PICKLE_TAG] = _unpickled


def decode(data: Any) -> Any:
    if isinstance(data, list):
        return [decode(item) for item in data]
    if isinstance(data, dict):
        tag = data.get(TAG)
        if tag is not None:
            decoder = _by_tag.get(tag)
            if decoder is None:
                raise StateError(f"unknown typed value {tag!r} in state (is the peer a newer lit?)")
            return decoder(data.get("v"))
        return {key: decode(item) for key, item in data.items()}
    return data


def dumps(data: Any) -> str:
    """Canonical JSON text of already-encoded data (sorted keys: equal values give equal text)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def same(a: Any, b: Any) -> bool:
    """Whether two plain values are equal as state (deep, type-aware like JSON)."""
    try:
        return dumps(encode(a)) == dumps(encode(b))
    except StateError:
        return False
