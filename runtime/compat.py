"""Lightning names lit accepts but ignores warn once per name (see docs/lightning-compat.md)."""

from __future__ import annotations

import warnings

from .errors import LightningCompatError


class LightningCompatWarning(UserWarning):
    """A Lightning argument or feature that lit accepts and ignores."""


_warned: set[str] = set()


def warn_ignored(what: str, why: str = "lit has no use for it") -> None:
    """Warn once per process that a Lightning argument is accepted and ignored."""
    if what in _warned:
        return
    _warned.add(what)
    warnings.warn(f"{what} is accepted for Lightning compatibility and ignored: {why}.",
                  LightningCompatWarning, stacklevel=3)


def reject(what: str, instead: str) -> LightningCompatError:
    return LightningCompatError(f"{what} is not supported by lit: {instead}.")
