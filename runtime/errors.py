"""One error tree for lit. Libraries raise these; only the CLI prints and picks exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit code lit's commands and agents use (a CI step reads these)."""

    OK = 0
    FAILED = 1  # the app failed: a work raised, the flow called fail(), a work's process died
    BAD_INPUT = 2  # refused before anything started
    INFRASTRUCTURE = 3  # something below the app failed: a host, the cloud, the protocol
    NO_AGENT = 4  # `attach`: no agent listens at the socket (it ended or was killed)
    INTERRUPTED = 130  # Ctrl-C ended the run (128 + SIGINT, as shells report it)
    TERMINATED = 143  # SIGTERM ended the run (128 + SIGTERM)


class LitError(Exception):
    """Base of every error lit raises on purpose."""

    exit_code: int = ExitCode.FAILED


class BadInput(LitError):
    """Refused before anything started: a missing file, a syntax error, a bad argument."""

    exit_code = ExitCode.BAD_INPUT


class AppFailed(LitError):
    """The app failed: a work raised, the flow called fail(), a work process died."""

    exit_code = ExitCode.FAILED


class InfrastructureError(LitError):
    """Something below the app failed after it started: capacity, an unreachable host, a changed key."""

    exit_code = ExitCode.INFRASTRUCTURE


class ProtocolError(LitError):
    """The peer spoke something we do not understand (a version mismatch or a malformed frame)."""

    exit_code = ExitCode.INFRASTRUCTURE


class StateError(TypeError, LitError):
    """A value that cannot be state (not JSON-serializable) was assigned or passed."""


class LightningCompatError(NotImplementedError, LitError):
    """A Lightning feature lit rejects on purpose (see docs/lightning-compat.md)."""
