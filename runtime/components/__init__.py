"""Ready-made works and flows, as `lightning.app.components` has them: `lit.components` (also
`lit.app.components`).

Each name is imported on first use, so `import lit` stays light and a component's optional dependency is only
needed by apps that use it."""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module (under lit.runtime.components) that defines it
_WHERE = {
    "PopenPythonScript": "scripts",
    "TracerPythonScript": "scripts",
    "Tracer": "scripts",
    "PythonServer": "serve",
    "Text": "serve",
    "Number": "serve",
    "Image": "serve",
    "Category": "serve",
    "MultiNode": "multinode",
    "PyTorchSpawnMultiNode": "multinode",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{where}"), name)


def __dir__() -> list[str]:
    return __all__
