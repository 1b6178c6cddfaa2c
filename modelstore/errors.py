"""Errors of model preparation; the CLI turns them into one clear line and exit code 1."""

from __future__ import annotations


class ModelError(Exception):
    """Base of every model-cache error."""


class ModelNotInstalledError(ModelError):
    """A package that carries weights is not installed, or a local folder is missing."""


class ModelIntegrityError(ModelError):
    """A file's size or sha256 is not the pinned one: a damaged or different download."""


class ModelFormatError(ModelError):
    """A file is not in the format expected (header, tensor directory, config)."""


class EngineBuildError(ModelError):
    """The installed inference engine was built with kernels known to crash on this model."""
