"""Scripts that run on a machine before lit's code is there (a probe, a GPU lease, a host key): each is a real
module of the provider's `host` package, standard library only, linted and tested like the rest, and sent to
`python3 -` as its source."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


@cache
def source(module: str) -> bytes:
    """The source of a host script module, named as imported: `lit.provisioner.<provider>.host.<script>` (read once
    per process)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(module)
    return Path(spec.origin).read_bytes()
