"""The lit home: `~/.lit`, or `$LIT_HOME`. Runs, logs and cluster records live here."""

from __future__ import annotations

import os
from pathlib import Path


def lit_home() -> Path:
    home = os.environ.get("LIT_HOME")
    return Path(home).expanduser().resolve() if home else Path.home() / ".lit"


def run_dir(run_name: str) -> Path:
    return lit_home() / "runs" / run_name
