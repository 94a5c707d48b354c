"""Errors a user can act on.

Every error says what was expected, what came, and how to fix it. The CLI prints
``str(error)`` and exits with ``error.exit_code``; no traceback for these.
"""

from __future__ import annotations

__all__ = [
    "EWSError",
    "ConfigError",
    "FrameError",
    "DataFormatError",
    "WarehouseError",
    "WarehouseLockedError",
    "ModelError",
    "TransitionError",
    "DeliveryError",
    "LLMError",
]


class EWSError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code = 1

    def __init__(self, problem: str, *, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\n  fix: {fix}")


class ConfigError(EWSError):
    """The settings file or an EWS_* variable holds a value the engine cannot use."""

    exit_code = 2


class FrameError(EWSError):
    """A frame passed to a library function breaks its documented contract."""

    exit_code = 3


class DataFormatError(EWSError):
    """A source file cannot be parsed into series; nothing of it was stored."""

    exit_code = 4


class WarehouseError(EWSError):
    """The warehouse file cannot be opened or migrated."""

    exit_code = 5


class WarehouseLockedError(WarehouseError):
    """Another process holds the warehouse for writing."""

    exit_code = 6


class ModelError(EWSError):
    """A model could not be built or fitted for any series of a batch."""

    exit_code = 7


class TransitionError(EWSError):
    """A review action does not fit the alert's current state (e.g. approving a resolved alert)."""

    exit_code = 10


class DeliveryError(EWSError):
    """A recipient, CAP message or delivery cannot be set up as asked."""

    exit_code = 11


class LLMError(EWSError):
    """The LLM path is misconfigured, switched off, revoked or over its budget."""

    exit_code = 12
