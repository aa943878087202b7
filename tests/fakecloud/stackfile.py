"""The fake cloud's record of one stack: `<lit home>/fakecloud-stacks/<stack>.json`.

{"stack": name, "endpoint": url, "config": {...}, "outputs": {...} | null,
 "resources": [{"urn", "type", "name", "status": "pending" | "created", "id", "state", "retain", "provider",
                "data"}, ...]}   # in creation order; a pending record was being created when the run stopped
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..stackengine import RecordFile
from .aws import FakeCloudError

STACKS_DIR = "fakecloud-stacks"
STACK_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,127}$")


class StackFile(RecordFile):
    def __init__(self, home: Path, stack: str) -> None:
        if not STACK_NAME.match(stack):
            raise FakeCloudError(f"stack name {stack!r}: letters, digits, '.', '_' and '-' only")
        super().__init__(Path(home) / STACKS_DIR, stack)
        self.stack = stack

    def save(self, data: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One run (up or destroy) of a stack at a time."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.dir / f".{self.stack}.lock", "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FakeCloudError(f"stack {self.stack} is being updated by another process") from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
