"""Observation helper for the test apps: append one JSON object per line to $LIT_TEST_OBS.

Used from the flow (lit's process) and from works (agent processes); each record is one O_APPEND write,
so lines from different processes do not interleave.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


def emit(event: str, **fields: Any) -> None:
    path = os.environ.get("LIT_TEST_OBS")
    if not path:
        return
    record = {"event": event, "pid": os.getpid(), "time": time.time(), **fields}
    data = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
