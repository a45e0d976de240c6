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

    def __init__(self, package: str, extra: str | None = None) -> None:
        fix = f"pip install 'proml-lab[{extra}]'" if extra else "pip install proml-lab (a core dependency is missing)"
        super().__init__(f"{package} is not installed. Install it with: {fix}")
        self.package = package
        self.extra = extra


class FeatureError(ProMLError):
    """Something is wrong with a feature definition or a feature request."""


class UnknownFeatureError(FeatureError, KeyError):
    """A feature (or entity, source, anchor) name is not in the catalog; ``suggestions`` are the closest."""

    def __init__(self, name: str, suggestions: list[str] | tuple[str, ...] = (), *, what: str = "feature") -> None:
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"Unknown {what} {name!r}.{hint}")
        self.name = name
        self.suggestions = list(suggestions)
        self.what = what

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class DefinitionError(FeatureError):
    """A definition is invalid; names the file (when known) and the field that is wrong."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None) -> None:
        where = ", ".join(p for p in (file, f"field {field}" if field else None) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.field = field
        self.reason = message


class FeatureInUseError(FeatureError):
    """A feature cannot be deleted because published models use it."""

    def __init__(self, name: str, models: list[str]) -> None:
        super().__init__(
            f"Feature {name!r} is used by published model(s) {', '.join(models)}; retire those models "
            "first (or publish versions that do not use it)."
        )
        self.name = name
        self.models = models


class OnlineStoreError(ProMLError):
    """The online store cannot be reached or used; names its URL."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(f"{message} (online store {url})")
        self.url = url


class TrainingError(ProMLError):
    """Training could not run: bad labels, an unknown family, a node without data, a failed solve ..."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class DeployError(ProMLError):
    """Publishing or deploying a model failed: an unknown model / version / alias, a run without a bundle ..."""


class BundleError(DeployError):
    """A model bundle cannot be written or read (missing, damaged or of an unknown format); names the file."""

    def __init__(self, message: str, *, path: str | None = None, file: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.file = file


class ForwardIndexError(DeployError):
    """A forward-index generation is missing, damaged or inconsistent; names its path and the bad shard."""

    def __init__(self, message: str, *, path: str | None = None, shard: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.shard = shard


class DeploymentError(DeployError):
    """A deployment, rollback or alias look-up failed; names the model and, when known, what exists."""

    def __init__(self, message: str, *, model: str | None = None, known: list[str] | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.known = list(known or [])


class ExperimentError(ProMLError):
    """An A/B experiment cannot be defined, started, ramped or stopped as asked; names it and what exists."""

    def __init__(self, message: str, *, experiment: str | None = None, known: list[str] | None = None) -> None:
        super().__init__(message)
        self.experiment = experiment
        self.known = list(known or [])


class HealthError(ProMLError, ValueError):
    """A health check, detector or alert-store call got input it cannot work with (the message says which)."""
