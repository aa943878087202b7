"""`lit.components`: ready-made works and flows (Lightning's `lightning.app.components`)."""

from __future__ import annotations

from typing import Any

from lit.runtime import components as _components

__all__ = list(_components.__all__)


def __getattr__(name: str) -> Any:
    return getattr(_components, name)


def __dir__() -> list[str]:
    return __all__
