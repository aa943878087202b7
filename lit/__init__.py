"""lit: full-stack AI apps. A LightningFlow orchestrates LightningWorks; each work names its machine.

    import lit as L

The names follow Lightning Apps, so a Lightning app runs with only its import changed.
"""

from __future__ import annotations

from lit.runtime.app import App, LightningApp
from lit.runtime.compute import COMPUTE_NAMES, CloudCompute
from lit.runtime.errors import LitError
from lit.runtime.flow import Flow, LightningFlow
from lit.runtime.status import WorkStageStatus, WorkStatus
from lit.runtime.work import LightningWork, Work

from . import frontend, storage, structures
from .compat_build import BuildConfig
from .frontend import LightningPlugin
from .storage import Drive, Path, Payload

__version__ = "0.1.0"

__all__ = [
    "COMPUTE_NAMES",
    "App",
    "BuildConfig",
    "CloudCompute",
    "Drive",
    "Flow",
    "LightningApp",
    "LightningFlow",
    "LightningPlugin",
    "LightningWork",
    "LitError",
    "Path",
    "Payload",
    "Work",
    "WorkStageStatus",
    "WorkStatus",
    "__version__",
    "frontend",
    "storage",
    "structures",
]
