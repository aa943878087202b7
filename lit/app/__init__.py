"""`lit.app`: the same names as `lightning.app`, so `from lightning.app import X` moves with one rename."""

from lit import (
    BuildConfig,
    CloudCompute,
    LightningApp,
    LightningFlow,
    LightningPlugin,
    LightningWork,
    structures,
)
from lit.app import frontend, storage

__all__ = ["BuildConfig", "CloudCompute", "LightningApp", "LightningFlow", "LightningPlugin", "LightningWork",
           "frontend", "storage", "structures"]
