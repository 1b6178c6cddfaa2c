"""The evaluation harness's errors; the CLI turns them into messages and exit codes."""

from __future__ import annotations


class EvalError(Exception):
    """Base class of every error the harness raises on purpose."""

    exit_code = 1


class DatasetError(EvalError):
    """A data set is missing, unreadable, or not in the format named."""


class UsageError(EvalError):
    """A command-line value the harness cannot act on (an unknown metric in a gate...)."""

    exit_code = 2


class RunNotFoundError(UsageError):
    """A run folder named on the command line does not exist."""


class ResumeMismatchError(UsageError):
    """``--resume`` names a run made with another data set, selection or settings."""
