"""recon's own error types. Everything recon reports to a user is one of these."""

from __future__ import annotations


class ReconError(Exception):
    """Base of every error recon reports without a traceback.

    ``where`` names the place the error is about: a file and key path, a resource
    address, a cloud call. It is printed before the message.
    """

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(ReconError):
    """The desired-state file (or a file it names) is wrong."""


class CloudError(ReconError):
    """A cloud call failed (after retries, where it was worth retrying)."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 code: str | None = None, operation: str | None = None):
        super().__init__(message, where=where, hint=hint)
        self.code = code
        self.operation = operation


class StateError(ReconError):
    """The state file is unreadable, or belongs to something else."""


class LockError(StateError):
    """The state is locked by somebody else."""


class PlanError(ReconError):
    """The plan cannot be made (or applied) as asked."""
