"""Ready-made works and flows, as `lightning.app.components` has them: `lit.components` (also
`lit.app.components`).

Each name is imported on first use, so `import lit` stays light and a component's optional dependency is only
needed by apps that use it. Lightning's components lit does not provide are here too, by name: using one raises
LightningCompatError saying what to do instead (docs/lightning-compat.md lists every name and its state)."""

from __future__ import annotations

import functools
import importlib
from typing import Any

from ..compat import reject

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

# Lightning's names lit does not provide, and what to do instead.
_INSTEAD = {
    "AutoScaler": "lit has no load balancer yet: run several PythonServer works and spread the requests",
    "ColdStartProxy": "lit has no load balancer yet (AutoScaler's cold-start proxy goes with it)",
    "Database": "keep state in work attributes, or files in a lit.Drive",
    "DatabaseClient": "keep state in work attributes, or files in a lit.Drive",
    "Code": "lit ships the app's folder to every machine: put the script there and give its path",
    "ServeGradio": "serve the UI from a work of your own (work.url), or a PythonServer for the model",
    "ServeStreamlit": "serve the UI from a work of your own (work.url)",
    "ModelInferenceAPI": "use PythonServer (setup() and predict())",
    "FabricMultiNode": "not yet: use MultiNode, whose works get main_address, main_port, num_nodes and node_rank",
    "LightningTrainerMultiNode": "not yet: use MultiNode, whose works get main_address, main_port, num_nodes and "
                                 "node_rank",
    "LightningTrainerScript": "not yet: use TracerPythonScript on your training script",
    "PyTorchLightningScriptRunner": "not yet: use TracerPythonScript on your training script",
}

__all__ = sorted([*_WHERE, *_INSTEAD])


@functools.cache  # one class per name: `lit.components.X is lit.app.components.X`
def _missing(name: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise reject(f"lit.components.{name}", _INSTEAD[name])

    return type(name, (), {"__init__": __init__, "__doc__": f"Not provided by lit: {_INSTEAD[name]}."})


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is not None:
        return getattr(importlib.import_module(f"{__name__}.{where}"), name)
    if name in _INSTEAD:
        return _missing(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
