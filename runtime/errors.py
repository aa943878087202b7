"""One error tree for lit. Libraries raise these; only the CLI prints and picks exit codes."""

from __future__ import annotations


class LitError(Exception):
    """Base of every error lit raises on purpose."""

    exit_code = 1


class BadInput(LitError):
    """Refused before anything started: a missing file, a syntax error, a bad argument."""

    exit_code = 2


class AppFailed(LitError):
    """The app failed: a work raised, the flow called fail(), a work process died."""

    exit_code = 1


class InfrastructureError(LitError):
    """Something below the app failed after it started: capacity, an unreachable host, a changed key."""

    exit_code = 3


class ProtocolError(LitError):
    """The peer spoke something we do not understand (a version mismatch or a malformed frame)."""

    exit_code = 3


class StateError(TypeError, LitError):
    """A value that cannot be state (not JSON-serializable) was assigned or passed."""


class LightningCompatError(NotImplementedError, LitError):
    """A Lightning feature lit rejects on purpose (see docs/lightning-compat.md)."""
