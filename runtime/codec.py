"""The state encoding: JSON, plus tagged values for types that must survive the trip (paths, compute).

A typed value is encoded as {"$lit": TAG, "v": PAYLOAD}. Plain dicts may not use the "$lit" key.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

from .errors import StateError

TAG = "$lit"

_Encoder = Callable[[Any], Any]
_Decoder = Callable[[Any], Any]
_by_type: dict[type, tuple[str, _Encoder]] = {}
_by_tag: dict[str, _Decoder] = {}


def register_type(tag: str, cls: type, to_json: _Encoder, from_json: _Decoder) -> None:
    """Let values of `cls` travel as state, encoded as {"$lit": tag, "v": to_json(value)}."""
    _by_type[cls] = (tag, to_json)
    _by_tag[tag] = from_json


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} (type {type(value).__name__})"


def encode(value: Any, where: str = "value") -> Any:
    """Return a JSON-ready form of `value`, or raise StateError naming `where` and the bad part."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise StateError(f"{where} = {value!r} is not JSON-serializable (NaN and infinity are not JSON)")
        return value
    if isinstance(value, (list, tuple)):
        return [encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise StateError(f"{where} has a non-string key {key!r}: state dicts need string keys")
            if key == TAG:
                raise StateError(f"{where} uses the reserved key {TAG!r}")
            out[key] = encode(item, f"{where}[{key!r}]")
        return out
    typed = _by_type.get(type(value))
    if typed is not None:
        tag, to_json = typed
        return {TAG: tag, "v": to_json(value)}
    raise StateError(f"{where} = {_describe(value)} is not JSON-serializable; state and call arguments "
                     "must be JSON values (dict, list, str, int, float, bool, None)")


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
