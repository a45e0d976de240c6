"""One root exception for the whole product; subclasses carry structured fields.

Every error a user can meet derives from :class:`ProMLError`, so callers (magics, the CLI, the REST
layer) can catch one type and still read *what* went wrong from the fields.
"""

from __future__ import annotations


class ProMLError(Exception):
    """Root of every error ProML Lab raises on purpose."""


class ConfigurationError(ProMLError):
    """A setting has a value that cannot work (names the setting and how to fix it)."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class WorkspaceError(ProMLError):
    """The workspace directory is missing, unreadable or of an incompatible format."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class DataNotFoundError(ProMLError):
    """A data set the user asked for is not where it should be."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class MissingDependencyError(ProMLError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed. Install it with: pip install 'proml-lab[{extra}]'"
        )
        self.package = package
        self.extra = extra
