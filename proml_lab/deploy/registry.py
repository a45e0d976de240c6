"""Publishing on the MLflow Model Registry: versions, aliases (``champion``, ``challenger``), loading.

A published version is a bundle (:mod:`proml_lab.deploy.bundle`) logged as artifact ``bundle`` of an MLflow
run and registered under a model name; its tags hold what the Models panel shows without downloading it
(``metric.<name>``, ``features``, ``data_fingerprint``, ``run_id``, ``program``). Publishing records the
model's feature lineage in the catalog, so a feature a published model reads cannot be deleted.

Where the version number lives: the logged bundle is version-neutral (``manifest["version"]`` is null:
one run may be published under several names). :meth:`ModelRegistry.load` writes the registered name and
version into the manifest of its local copy (``<workspace>/models/<name>/<version>/``); the manifest is
not covered by its own checksums, so the copy still verifies. No alias is set unless asked for.

Examples
--------
>>> registry = ModelRegistry(ws)                                          # doctest: +SKIP
>>> v = registry.publish(trained, alias="champion")                        # doctest: +SKIP
>>> registry.load("world_job_recommendations", alias="champion").score(frame)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proml_lab.deploy.bundle import ARTIFACT_PATH, MANIFEST, Bundle, load_bundle, log_bundle, save_bundle
from proml_lab.errors import DeployError

if TYPE_CHECKING:
    from proml_lab.training.connect import TrainedModel
    from proml_lab.workspace import Workspace

__all__ = ["ModelRegistry", "ModelVersion"]

_ALIAS = re.compile(r"^[A-Za-z0-9_-]+$")
_RESERVED = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)  # MLflow keeps these for itself


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: str
    run_id: str | None
    source: str
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    description: str = ""

    @property
    def metrics(self) -> dict[str, float]:
        """The metrics recorded in the version's tags (``metric.auc`` -> ``{"auc": ...}``)."""
        return {k.removeprefix("metric."): float(v) for k, v in self.tags.items() if k.startswith("metric.")}

    @property
    def features(self) -> list[str]:
        return [f for f in self.tags.get("features", "").split(",") if f]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``proml models --json`` and the Models panel show)."""
        return {"name": self.name, "version": self.version, "run_id": self.run_id, "source": self.source,
                "aliases": list(self.aliases), "metrics": self.metrics, "features": self.features,
                "data_fingerprint": self.tags.get("data_fingerprint"), "program": self.tags.get("program"),
                "description": self.description,
                "created_at": None if self.created_at is None else self.created_at.isoformat()}

    def _repr_html_(self) -> str:
        from html import escape

        metrics = ", ".join(f"{k} {v:.4f}" for k, v in self.metrics.items()) or "none"
        return (f"<div class='proml-published'><b>{escape(self.name)}</b> version <b>{escape(self.version)}</b>"
                f" &middot; aliases: {escape(', '.join(self.aliases) or 'none')} &middot; metrics: "
                f"{escape(metrics)} &middot; run <code>{escape(self.run_id or '')}</code></div>")

    def __str__(self) -> str:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in self.metrics.items()) or "none"
        return (f"{self.name} version {self.version} (aliases: {', '.join(self.aliases) or 'none'}; "
                f"metrics: {metrics}; run {self.run_id})")


class ModelRegistry:
    """The workspace's MLflow Model Registry: publish bundles, move aliases, load versions.

    Parameters
    ----------
    workspace : Workspace
        Its MLflow store holds the registry; loaded versions are cached under ``<workspace>/models/``.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._tracker: Any = None

    @property
    def client(self) -> Any:
        if self._tracker is None:
            from proml_lab.training.tracking import Tracker

            self._tracker = Tracker(self.workspace)
        return self._tracker.client

    # ---- publish -----------------------------------------------------------------------------------

    def publish(self, model: TrainedModel | Bundle | str, *, name: str | None = None, alias: str | None = None,
                description: str | None = None) -> ModelVersion:
        """Register a new version of *model* (a TrainedModel, a Bundle, or the id of a run holding a bundle).

        The registered model is created on first publish; *alias* (e.g. ``"champion"``) is then moved to
        the new version. Returns the new :class:`ModelVersion`.

        Examples
        --------
        >>> ModelRegistry(ws).publish(run_id, alias="challenger").version   # doctest: +SKIP
        '2'
        """
        if alias is not None:
            _check_alias(alias)
        source, manifest = self._logged_bundle(model)
        name = name or manifest.get("name")
        if not name:
            raise DeployError("the model has no name (no MODEL line in its program): pass name=...")
        tags = _version_tags(manifest)
        self._ensure_model(name)
        mv = self.client.create_model_version(name, source, run_id=manifest.get("run_id"), tags=tags,
                                              description=description)
        version = str(mv.version)
        if alias is not None:
            self.client.set_registered_model_alias(name, alias, version)
        self._record_lineage(name, version, manifest.get("features", []))
        return self.resolve(name, version)

    def _logged_bundle(self, model: Any) -> tuple[str, dict[str, Any]]:
        """``(runs:/<run>/bundle, manifest)`` of *model*, logging its bundle to a run first if needed."""
        from proml_lab.training.connect import TrainedModel

        if isinstance(model, Bundle):
            model = model.to_model()
        if isinstance(model, TrainedModel):
            if not model.run_id or not self._run_exists(model.run_id):
                model = self._publish_run(model)
            return self._bundle_of(model)
        if isinstance(model, str):
            return f"runs:/{model}/{ARTIFACT_PATH}", self._run_manifest(model)
        raise DeployError(f"publish takes a TrainedModel, a Bundle or a run id; got {type(model).__name__}")

    def _bundle_of(self, model: TrainedModel) -> tuple[str, dict[str, Any]]:
        """The run's ``bundle`` when it holds exactly this model (no upload); otherwise this model's bundle
        logged beside it under a new path, so a version published earlier from the run never changes."""
        with tempfile.TemporaryDirectory(prefix="proml-bundle-") as tmp:
            files = save_bundle(model, Path(tmp) / ARTIFACT_PATH).manifest["files"]
        try:
            logged: dict[str, Any] | None = self._run_manifest(model.run_id)
        except DeployError:
            logged = None
        if logged is not None and logged.get("files") == files:
            return f"runs:/{model.run_id}/{ARTIFACT_PATH}", logged
        path = ARTIFACT_PATH if logged is None else f"{ARTIFACT_PATH}-{uuid.uuid4().hex[:8]}"
        source = log_bundle(self.workspace, model, artifact_path=path)
        return source, self._run_manifest(model.run_id, path)

    def _publish_run(self, model: TrainedModel) -> TrainedModel:
        """A new run (tagged ``proml.kind=publish``) for a model trained without tracking."""
        from proml_lab.training.tracking import Tracker

        with Tracker(self.workspace).start_run(f"publish {model.name or 'model'}",
                                               tags={"proml.kind": "publish"}) as run:
            run.log_metrics(model.metrics)
            if model.source is not None:
                run.log_text(model.source, "program.quasar")
        return dataclasses.replace(model, run_id=run.run_id)

    def _run_exists(self, run_id: str) -> bool:
        try:
            self.client.get_run(run_id)
        except Exception:  # noqa: BLE001 - MLflow raises its own error for an unknown run
            return False
        return True

    def _run_manifest(self, run_id: str, path: str = ARTIFACT_PATH) -> dict[str, Any]:
        if not self._run_exists(run_id):
            raise DeployError(f"there is no MLflow run {run_id!r} in this workspace (see `proml runs` or "
                              f"the Runs panel for run ids)")
        names = {a.path for a in self.client.list_artifacts(run_id, path)}
        if f"{path}/{MANIFEST}" not in names:
            raise DeployError(f"run {run_id} has no model bundle (no {path!r} artifact): train with "
                              f"`proml train` or %train, which log one, or publish the trained model itself")
        with tempfile.TemporaryDirectory(prefix="proml-manifest-") as tmp:
            local = self.client.download_artifacts(run_id, f"{path}/{MANIFEST}", tmp)
            manifest = json.loads(Path(local).read_text(encoding="utf-8"))
        manifest["run_id"] = run_id
        return manifest

    def _ensure_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        if self._registered(name) is None:
            try:
                self.client.create_registered_model(name, tags={"proml.kind": "ranking-model"})
            except MlflowException:  # created meanwhile by another publish
                if self._registered(name) is None:
                    raise

    def _record_lineage(self, name: str, version: str, features: list[str]) -> None:
        catalog = self.workspace.features.catalog
        known = {f.name for f in catalog.features()}
        used = [f for f in features if f in known]  # features read from frames outside the catalog: no lineage
        if used:
            catalog.record_lineage(name, version, used)

    # ---- aliases -----------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: str | int) -> ModelVersion:
        """Point *alias* of model *name* at *version* (moving it from wherever it pointed)."""
        _check_alias(alias)
        mv = self._version(name, str(version))
        self.client.set_registered_model_alias(name, alias, mv.version)
        return self.resolve(name, mv.version)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove *alias* from model *name*."""
        aliases = self._model(name).aliases
        if alias not in aliases:
            raise DeployError(f"model {name!r} has no alias {alias!r}; its aliases: "
                              f"{_listing(sorted(aliases))}")
        self.client.delete_registered_model_alias(name, alias)

    def resolve(self, name: str, alias_or_version: str | int | None = None) -> ModelVersion:
        """The version an alias points at, or a version by number (``None`` or ``"latest"``: the newest)."""
        if alias_or_version is None or str(alias_or_version) == "latest":
            found = self.versions(name)
            if not found:
                raise DeployError(f"model {name!r} has no versions")
            return found[-1]
        key = str(alias_or_version)
        if key.isdigit():
            return self._version(name, key)
        aliases = self._model(name).aliases
        if key not in aliases:
            raise DeployError(f"model {name!r} has no alias {key!r}; its aliases: {_listing(sorted(aliases))}; "
                              f"its versions: {_listing([v.version for v in self.versions(name)])}")
        return self._version(name, str(aliases[key]))

    # ---- read --------------------------------------------------------------------------------------

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of model *name*, oldest first."""
        registered = self._model(name)
        by_version: dict[str, list[str]] = {}
        for alias, version in (registered.aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        found = self.client.search_model_versions(f"name = '{_quote(name)}'")
        return sorted((_version(mv, by_version) for mv in found), key=lambda v: int(v.version))

    def models(self) -> list[dict[str, Any]]:
        """Every registered model: name, latest version, aliases, created time, and its versions (newest first)."""
        out = []
        for rm in self._registered_models():
            versions = self.versions(rm.name)
            out.append({"name": rm.name, "description": rm.description or "",
                        "latest_version": versions[-1].version if versions else None,
                        "aliases": {a: str(v) for a, v in sorted((rm.aliases or {}).items())},
                        "created_at": _time(rm.creation_timestamp).isoformat() if rm.creation_timestamp else None,
                        "versions": [v.to_dict() for v in reversed(versions)]})
        return out

    def load(self, name: str, version: str | int | None = None, *, alias: str | None = None) -> Bundle:
        """The bundle of a version (default: the newest; or the one *alias* points at), cached locally.

        The first load downloads the version into ``<workspace>/models/<name>/<version>/`` (a temporary
        directory renamed into place, so concurrent loads are safe); later loads read that copy.
        """
        if version is not None and alias is not None:
            raise DeployError("pass a version or an alias, not both")
        mv = self.resolve(name, alias if alias is not None else version)
        target = self.workspace.root / "models" / name / mv.version
        if not (target / MANIFEST).is_file():
            self._download(mv, target)
        return load_bundle(target)

    def _download(self, mv: ModelVersion, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            uri = self.client.get_model_version_download_uri(mv.name, mv.version)
            import mlflow

            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp / "dl")))
            manifest_file = local / MANIFEST
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
            manifest.update({"name": mv.name, "version": mv.version, "run_id": mv.run_id})
            manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            try:
                local.rename(target)
            except OSError:  # another process put it there first: theirs is the same version
                if not (target / MANIFEST).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # ---- lookups with helpful errors ---------------------------------------------------------------

    def _registered_models(self) -> list[Any]:
        return sorted(self.client.search_registered_models(max_results=1000), key=lambda m: m.name)

    def _registered(self, name: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException:
            return None

    def _model(self, name: str) -> Any:
        found = self._registered(name)
        if found is None:
            names = [m.name for m in self._registered_models()]
            raise DeployError(f"no published model {name!r}; published models: {_listing(names)}")
        return found

    def _version(self, name: str, version: str) -> ModelVersion:
        for v in self.versions(name):
            if v.version == version:
                return v
        raise DeployError(f"model {name!r} has no version {version}; its versions: "
                          f"{_listing([v.version for v in self.versions(name)])}")


# ---- helpers ---------------------------------------------------------------------------------------------


def _check_alias(alias: str) -> None:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or _RESERVED.match(alias):
        raise DeployError(f"alias {alias!r} is not allowed: use letters, digits, '_' and '-' (e.g. champion, "
                          f"challenger, arm-b), and not 'latest' or 'v<number>', which MLflow reserves")


def _version_tags(manifest: dict[str, Any]) -> dict[str, str]:
    from proml_lab.training.tracking import metric_key

    tags = {f"metric.{metric_key(k)}": repr(float(v)) for k, v in (manifest.get("metrics") or {}).items()}
    tags.update({"features": ",".join(manifest.get("features") or []),
                 "data_fingerprint": str(manifest.get("data_fingerprint") or ""),
                 "run_id": str(manifest.get("run_id") or ""), "program": str(manifest.get("name") or ""),
                 "label": str(manifest.get("label") or "")})
    return tags


def _version(mv: Any, aliases: dict[str, list[str]]) -> ModelVersion:
    return ModelVersion(name=mv.name, version=str(mv.version), run_id=mv.run_id or None, source=mv.source,
                        aliases=tuple(sorted(aliases.get(str(mv.version), []))), tags=dict(mv.tags or {}),
                        created_at=_time(mv.creation_timestamp) if mv.creation_timestamp else None,
                        description=mv.description or "")


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def _listing(items: list[str]) -> str:
    return ", ".join(items) if items else "none"
