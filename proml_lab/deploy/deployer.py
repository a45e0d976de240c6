"""Deploy a published model version: coefficients online, documents in a forward index, one atomic switch.

Layout under the workspace::

    <ws>/deployments/<name>/
      aliases.json                       the pointer serving reads: alias -> deployed entry, plus history
      generations/<version>-<uuid8>/     one forward-index generation per deployment (never changed)
      .deploy.lock                       one deployment of a model at a time

A deployment is a pipeline of named steps (:data:`CHECKPOINTS`): resolve the version, load its bundle,
write its member coefficients to the online store under version-qualified keys, build a new forward-index
generation (the program's document features + per-document coefficients), verify both (counts and
sha256), and only then replace ``aliases.json`` (temp file + fsync + ``os.replace``), mirror the alias in
the registry and collect what no alias or kept history entry uses. A crash before the switch leaves the
old version serving; a crash after it leaves the new one serving; the next deployment cleans up.

Examples
--------
>>> deployment = Deployer(ws).deploy("jobs", version="3")     # doctest: +SKIP
>>> resolve(ws, "jobs").version                                # doctest: +SKIP
'3'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from proml_lab._fs import write_json_atomic
from proml_lab.deploy.forward_index import ForwardIndex, coefficient_column, write_generation
from proml_lab.errors import DeploymentError, ForwardIndexError, ProMLError

if TYPE_CHECKING:
    from proml_lab.deploy.bundle import Bundle
    from proml_lab.features.online.base import OnlineStore
    from proml_lab.workspace import Workspace

__all__ = ["CHECKPOINTS", "Deployer", "Deployment", "coefficient_key", "resolve"]

Progress = Callable[[str, int, int], None]
POINTER = "aliases.json"
FORMAT = 1
CRASH_ENV = "PROML_DEPLOY_CRASH_AT"
"""Name of a checkpoint at which a deployment SIGKILLs its own process (crash tests only)."""
CHECKPOINTS = (
    "cleaned",               # stale temp dirs and files of an interrupted deployment removed
    "bundle_loaded",         # version resolved, bundle loaded from the registry cache
    "member_written",        # member coefficients written to the online store (before read-back)
    "member_verified",       # ... read back: counts and sha256 match the bundle
    "features_read",         # latest document feature values read from the offline tables
    "index_written",         # the new forward-index generation is in place (not yet pointed to)
    "index_verified",        # ... its counts, checksums and document coefficients match the bundle
    "pointer_staged",        # the new aliases.json is written to a temp file (not yet renamed)
    "pointer_switched",      # aliases.json replaced: the new version serves
    "registry_aliased",      # the registry alias mirrors the pointer
    "collected",             # unused generations and online coefficient versions deleted
)
_CHUNK = 50_000


def coefficient_key(name: str, node: str) -> str:
    """The model key a GLMix node's coefficients live under in the online store: ``<name>@<node>``."""
    from proml_lab.features.online.base import _MODEL_PART

    key = f"{name}@{node}"
    if not _MODEL_PART.match(key):
        raise DeploymentError(
            f"Model {name!r} (node {node!r}) cannot be deployed: online-store model keys must match "
            f"{_MODEL_PART.pattern}; got {key!r}. Publish it under a name of letters, digits, '_', '.', '-'.",
            model=name,
        )
    return key


@dataclass(frozen=True)
class Deployment:
    """What an alias points at: a model version, its forward-index generation and its local bundle."""

    name: str
    alias: str
    version: str
    generation: str
    index_path: Path
    bundle_path: Path
    deployed_at: str

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


class Deployer:
    """Deploy, roll back and inspect the deployments of a workspace's models.

    Parameters
    ----------
    workspace
        The workspace whose registry, online store and ``deployments/`` folder are used.
    """

    def __init__(self, workspace: Workspace, *, registry: Any = None) -> None:
        self.workspace = workspace
        self._registry = registry

    # -- verbs -----------------------------------------------------------------------------------------
    def deploy(self, name: str, version: str | int | None = None, *, from_alias: str | None = None,
               alias: str = "champion", keep: int = 3, shards: int = 4, as_of: dt.datetime | None = None,
               progress: Progress | None = None) -> Deployment:
        """Deploy a published version of ``name`` and point ``alias`` at it.

        Parameters
        ----------
        name
            Registered model name.
        version, from_alias
            The version to deploy, or a registry alias (``challenger``) naming it; default: the latest.
        alias
            The serving alias to move (``champion`` or an experiment arm).
        keep
            How many previous entries per alias stay deployed for :meth:`rollback`.
        shards
            Shards of the forward index.
        as_of
            The moment the document features are read at (default: the newest event the online store
            holds for them, so the index serves what the online store would; now if none is online).
        progress
            Called as ``progress(step, i, total)`` after each step of :data:`CHECKPOINTS`.

        Returns
        -------
        Deployment
            What ``alias`` now points at.
        """
        if not isinstance(keep, int) or keep < 0:
            raise ValueError("The 'keep' parameter of Deployer.deploy must be an int in [0, inf). "
                             f"Got {keep!r} instead.")
        _check_alias(alias)
        self._load(name, version, from_alias, check_only=True)  # an unknown model leaves no folder behind
        with self._locked(name, create=True):
            step = _Steps(progress)
            self._clean(name)
            step("cleaned")
            bundle = self._load(name, version, from_alias)
            version = str(bundle.version)
            step("bundle_loaded")
            store = self.workspace.features.online_store
            member = _write_member(store, name, version, bundle)
            step("member_written")
            _verify_member(store, name, version, bundle)
            step("member_verified")
            table, index_meta = self._document_table(bundle, as_of)
            step("features_read")
            generation = f"{_safe(version)}-{uuid.uuid4().hex[:8]}"
            index_path = self._generations(name) / generation
            index = write_generation(index_path, table, id_column=bundle.document_id_column, shards=shards,
                                     meta={"model": name, "version": version, **index_meta})
            step("index_written")
            try:
                index.verify()
                _verify_documents(index, bundle)
            except BaseException:
                shutil.rmtree(index_path, ignore_errors=True)  # never pointed to; a crash leaves it to _collect
                raise
            step("index_verified")
            entry = {
                "version": version, "generation": generation,
                "bundle_path": _relative(bundle.path, self.workspace),
                "deployed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"),
                "member_tables": member, "rows": len(index), "bytes": index.size_bytes,
            }
            doc = self._read_pointer(name)
            previous = doc["aliases"].get(alias)
            doc["aliases"][alias] = entry
            if previous is not None:
                doc["history"].setdefault(alias, []).append(previous)
            doc["keep"] = keep
            self._write_pointer(name, doc, step)
            step("pointer_switched")
            self._mirror_alias(name, alias, version)
            step("registry_aliased")
            self._collect(name, doc, keep)
            step("collected")
        return _deployment(self.workspace.root, name, alias, entry)

    def rollback(self, name: str, *, alias: str = "champion") -> Deployment:
        """Point ``alias`` back at its entry before the last deployment (checked intact first)."""
        _check_alias(alias)
        with self._locked(name):
            doc = self._read_pointer(name)
            history = doc["history"].get(alias) or []
            if alias not in doc["aliases"]:
                raise DeploymentError(
                    f"Model {name!r} has no deployment under alias {alias!r}; aliases: "
                    f"{', '.join(sorted(doc['aliases'])) or 'none (deploy it first)'}.",
                    model=name, known=sorted(doc["aliases"]),
                )
            if not history:
                raise DeploymentError(
                    f"Nothing to roll back to: alias {alias!r} of model {name!r} has no earlier deployment "
                    f"(it serves version {doc['aliases'][alias]['version']}).", model=name,
                )
            entry = history[-1]
            self.check(name, entry)
            doc["history"][alias] = history[:-1]
            doc["aliases"][alias] = entry
            self._write_pointer(name, doc, None)
            self._mirror_alias(name, alias, entry["version"])
        return _deployment(self.workspace.root, name, alias, entry)

    def status(self, name: str) -> dict[str, Any]:
        """Aliases, their history, the versions in use and every generation on disk with its size."""
        doc = self._read_pointer(name)
        uses: dict[str, list[str]] = {}
        for alias, entry in doc["aliases"].items():
            uses.setdefault(entry["generation"], []).append(alias)
        for alias, entries in doc["history"].items():
            for i, entry in enumerate(reversed(entries)):
                uses.setdefault(entry["generation"], []).append(f"{alias}~{i + 1}")
        folder = self._generations(name)
        generations = []
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if path.name.startswith("."):
                continue
            size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
            generations.append({"generation": path.name, "bytes": size, "used_by": uses.get(path.name, [])})
        return {
            "name": name,
            "aliases": {a: {**e, "alias": a} for a, e in sorted(doc["aliases"].items())},
            "history": {a: list(reversed(es)) for a, es in sorted(doc["history"].items())},
            "versions": sorted(_versions(doc), key=_version_key),
            "generations": generations,
            "keep": doc.get("keep"),
        }

    def check(self, name: str, entry: dict[str, Any] | str = "champion") -> dict[str, Any]:
        """Check that a deployed entry (or an alias's entry) is intact: index checksums, online coefficients.

        Raises :class:`DeploymentError` naming what is missing or damaged; returns a summary.
        """
        if isinstance(entry, str):
            doc = self._read_pointer(name)
            if entry not in doc["aliases"]:
                raise DeploymentError(f"Model {name!r} has no deployment under alias {entry!r}.", model=name,
                                      known=sorted(doc["aliases"]))
            return self.check(name, doc["aliases"][entry])
        version = entry["version"]
        try:
            index = ForwardIndex.open(self._generations(name) / entry["generation"])
            index.verify()
        except ForwardIndexError as exc:
            raise _not_intact(name, version, exc) from exc
        from proml_lab.deploy.bundle import load_bundle

        deployment = _deployment(self.workspace.root, name, "", entry)
        try:
            bundle = load_bundle(deployment.bundle_path)
        except ProMLError as exc:
            raise _not_intact(name, version, exc) from exc
        _verify_member(self.workspace.features.online_store, name, version, bundle)
        _verify_documents(index, bundle)
        return {"version": version, "generation": entry["generation"], "rows": len(index)}

    # -- steps -----------------------------------------------------------------------------------------
    def _folder(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise DeploymentError(f"{name!r} is not a valid model name.", model=name)
        return self.workspace.root / "deployments" / name

    def _generations(self, name: str) -> Path:
        return self._folder(name) / "generations"

    @contextlib.contextmanager
    def _locked(self, name: str, *, create: bool = False) -> Any:
        from filelock import FileLock

        folder = self._folder(name)
        if not folder.is_dir() and not create:
            raise DeploymentError(f"Model {name!r} has never been deployed in this workspace; deploy it first "
                                  f"(`proml deploy {name}`).", model=name)
        self._generations(name).mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder / ".deploy.lock"), timeout=600):
            yield

    def _registry_of(self) -> Any:
        if self._registry is None:
            from proml_lab.deploy.registry import ModelRegistry

            self._registry = ModelRegistry(self.workspace)
        return self._registry

    def _load(self, name: str, version: str | int | None, from_alias: str | None, *,
              check_only: bool = False) -> Any:
        registry = self._registry_of()
        if version is not None and from_alias is not None:
            raise DeploymentError(f"Deploy a version of {name!r} or the version an alias names, not both.",
                                  model=name)
        try:
            if check_only:
                return registry.resolve(name, from_alias if from_alias is not None else
                                        None if version is None else str(version))
            if from_alias is not None:
                return registry.load(name, alias=from_alias)
            return registry.load(name, version=None if version is None else str(version))
        except DeploymentError:
            raise
        except ProMLError as exc:
            raise DeploymentError(f"Cannot deploy model {name!r}: {exc}", model=name) from exc

    def _mirror_alias(self, name: str, alias: str, version: str) -> None:
        try:
            self._registry_of().set_alias(name, alias, version)
        except Exception as exc:  # noqa: BLE001 - the pointer file is the truth; the mirror is advisory
            warnings.warn(f"Deployed {name} version {version} as {alias!r}, but the registry alias could not "
                          f"be set: {exc}", RuntimeWarning, stacklevel=3)

    def _document_table(self, bundle: Bundle, as_of: dt.datetime | None) -> tuple[pa.Table, dict[str, Any]]:
        """The program's document-scope input features (latest values) + per-document coefficient columns."""
        from proml_lab.quasar import ir as irm

        features = list(dict.fromkeys(
            n.feature for n in bundle.ir.nodes if isinstance(n, irm.Input) and n.scope == "document"))
        id_column = bundle.document_id_column
        tables = [t for t in bundle.coefficient_tables() if t.entity == "document"]
        if features:
            store = self.workspace.features
            entities = sorted({r.entity for r in store.catalog.resolve(features)})
            if len(entities) != 1:
                raise DeploymentError(
                    f"The document features of model {bundle.name!r} belong to {len(entities)} entities "
                    f"({', '.join(entities)}); a forward index holds one.", model=bundle.name)
            entity = entities[0]
            as_of = as_of or _online_moment(store, features)
            table = store.latest_values(entity, features, as_of=as_of)
            table = table.rename_columns([id_column, *table.column_names[1:]])
        else:
            entity, table = None, pa.table({id_column: pa.array([], pa.int64())})
        ids = _keys(table[id_column])
        like = (lambda x: np.asarray(x).astype(str)) if ids.dtype.kind in "UO" else (
            lambda x: np.asarray(x).astype(ids.dtype))  # str ids: no fixed width that would cut longer ones
        extra = [np.setdiff1d(like(t.ids), ids) for t in tables]
        extra_ids = np.unique(np.concatenate(extra)) if extra else ids[:0]
        if len(extra_ids):  # documents with coefficients but no feature row: keep them, features null
            filler = {c: pa.nulls(len(extra_ids), table.schema.field(c).type) for c in table.column_names[1:]}
            table = pa.concat_tables([table, pa.table({id_column: pa.array(extra_ids, table[id_column].type),
                                                       **filler}, schema=table.schema)])
            ids = _keys(table[id_column])
        coefficients: dict[str, Any] = {}
        order = np.argsort(ids, kind="stable")
        for t in tables:
            matrix = np.full((len(ids), t.coefficients.shape[1]), np.nan)
            rows = order[np.searchsorted(ids[order], like(t.ids))]
            matrix[rows] = t.coefficients
            present = np.zeros(len(ids), dtype=bool)
            present[rows] = True
            flat = pa.array(matrix.reshape(-1))
            column = pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1], mask=pa.array(~present))
            table = table.append_column(coefficient_column(t.node, t.part), column)
            coefficients[coefficient_column(t.node, t.part)] = {
                "node": t.node, "part": t.part, "rows": len(t.ids), "dim": int(t.coefficients.shape[1]),
                "sha256": _digest(t.coefficients),
            }
        meta = {"entity": entity, "features": features, "coefficients": coefficients,
                "as_of": None if as_of is None else as_of.isoformat()}
        return table, meta

    def _clean(self, name: str) -> None:
        """Remove what an interrupted deployment left: staging / trash dirs, temp pointer files."""
        for path in self._generations(name).iterdir():
            if path.name.startswith("."):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        for path in self._folder(name).glob(f".{POINTER}.*"):
            path.unlink(missing_ok=True)

    def _read_pointer(self, name: str) -> dict[str, Any]:
        path = self._folder(name) / POINTER
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"format": FORMAT, "name": name, "aliases": {}, "history": {}}
        except (OSError, json.JSONDecodeError) as exc:
            raise DeploymentError(f"Cannot read the deployment pointer {path}: {exc}", model=name) from exc
        doc.setdefault("aliases", {})
        doc.setdefault("history", {})
        return doc

    def _write_pointer(self, name: str, doc: dict[str, Any], step: _Steps | None) -> None:
        path = self._folder(name) / POINTER
        doc["updated_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
        if step is None:
            write_json_atomic(path, doc)
            return
        # The same as write_json_atomic, with a checkpoint between the durable temp file and the rename.
        tmp = path.with_name(f".{POINTER}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        step("pointer_staged")
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def _collect(self, name: str, doc: dict[str, Any], keep: int) -> None:
        """Trim each alias's history to ``keep`` entries; delete generations and online versions unused."""
        for alias, entries in list(doc["history"].items()):
            doc["history"][alias] = entries[-keep:] if keep else []
        self._write_pointer(name, doc, None)
        used_generations = {e["generation"] for e in _entries(doc)}
        for path in self._generations(name).iterdir():
            if not path.name.startswith(".") and path.name not in used_generations:
                trash = path.with_name(f".trash-{path.name}")
                os.replace(path, trash)  # atomic: a generation is whole or gone, never half deleted
                shutil.rmtree(trash, ignore_errors=True)
        used_versions = _versions(doc)
        store = self.workspace.features.online_store
        from proml_lab.features.online.base import COEFFICIENT_PREFIX

        prefix = f"{COEFFICIENT_PREFIX}/{name}@"
        stale = {(g[len(prefix):].split("/", 1)[0], g.rsplit("/", 1)[1])
                 for _, g in store.groups() if g.startswith(prefix)}
        for model_key_tail, version in sorted(stale):
            if version not in used_versions:
                store.delete_version(f"{name}@{model_key_tail}", version)


# ---------------------------------------------------------------------------------------------- serving

# (workspace root, model) -> (pointer file stamp, alias -> Deployment) and the paths of each pair
_RESOLVED: dict[tuple[Any, str], tuple[tuple[int, int, int], dict[str, Deployment]]] = {}
_POINTERS: dict[tuple[Any, str], tuple[Path, str]] = {}


def resolve(workspace: Workspace | str | os.PathLike[str], name: str,
            alias: str = "champion") -> Deployment | None:
    """What ``alias`` of ``name`` points at now, or None if it was never deployed.

    The serving path calls this once per request: the pointer file is parsed again only when its
    ``(st_mtime_ns, st_ino, st_size)`` changed, so the usual cost is one ``os.stat``.
    """
    cache_key = (workspace if isinstance(workspace, (str, os.PathLike)) else workspace.root, name)
    paths = _POINTERS.get(cache_key)
    if paths is None:
        root = Path(cache_key[0])
        paths = _POINTERS[cache_key] = (root, str(root / "deployments" / name / POINTER))
    try:
        st = os.stat(paths[1])
    except FileNotFoundError:
        return None
    stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
    cached = _RESOLVED.get(cache_key)
    if cached is None or cached[0] != stamp:
        try:
            with open(paths[1], encoding="utf-8") as fh:
                doc = json.load(fh)
        except FileNotFoundError:
            return None
        deployments = {a: _deployment(paths[0], name, a, e) for a, e in doc.get("aliases", {}).items()}
        cached = _RESOLVED[cache_key] = (stamp, deployments)
    return cached[1].get(alias)


# ---------------------------------------------------------------------------------------------- helpers


class _Steps:
    """Reports progress after each named step; SIGKILLs the process at ``$PROML_DEPLOY_CRASH_AT`` (tests)."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.crash_at = os.environ.get(CRASH_ENV)

    def __call__(self, name: str) -> None:
        if name == self.crash_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.progress is not None:
            self.progress(name, CHECKPOINTS.index(name) + 1, len(CHECKPOINTS))


def _write_member(store: OnlineStore, name: str, version: str, bundle: Bundle) -> dict[str, Any]:
    """Write every per-member table of the bundle (idempotent: the same version replaces its rows)."""
    written: dict[str, Any] = {}
    for table in bundle.coefficient_tables():
        if table.entity != "member":
            continue
        key = coefficient_key(name, table.node)
        for lo in range(0, len(table.ids), _CHUNK):
            store.write_coefficients(key, version, "member", table.ids[lo:lo + _CHUNK],
                                     table.coefficients[lo:lo + _CHUNK])
        written[table.node] = {"rows": int(len(table.ids)), "dim": int(table.coefficients.shape[1]),
                               "sha256": _digest(table.coefficients)}
    return written


def _verify_member(store: OnlineStore, name: str, version: str, bundle: Bundle) -> None:
    """Read every member table of a version back; counts and sha256 must equal the bundle's."""
    from proml_lab.features.online.base import UnknownGroupError

    for table in bundle.coefficient_tables():
        if table.entity != "member":
            continue
        key, expected, rows = coefficient_key(name, table.node), hashlib.sha256(), len(table.ids)
        digest, found = hashlib.sha256(), 0
        try:
            for lo in range(0, rows, _CHUNK):
                matrix, present = store.read_coefficients(key, version, "member", table.ids[lo:lo + _CHUNK])
                found += int(present.sum())
                digest.update(np.ascontiguousarray(matrix, dtype=np.float64).tobytes())
                part = table.coefficients[lo:lo + _CHUNK]
                expected.update(np.ascontiguousarray(part, dtype=np.float64).tobytes())
        except UnknownGroupError as exc:
            raise _not_intact(name, version, exc) from exc
        if found != rows or digest.hexdigest() != expected.hexdigest():
            raise DeploymentError(
                f"Version {version} of model {name!r}: the online store holds {found} of {rows} member "
                f"coefficient rows of node {table.node!r}"
                + ("" if found != rows else " but their values differ from the bundle's")
                + "; deploy the version again.", model=name,
            )


def _verify_documents(index: ForwardIndex, bundle: Bundle) -> None:
    """The index's document coefficients equal the bundle's (count and sha256 in the bundle's row order)."""
    for t in bundle.coefficient_tables():
        if t.entity != "document":
            continue
        ids, _ = index.coefficients(t.node, t.part)
        positions, found = index.rows(np.asarray(t.ids))
        stored = index.column(coefficient_column(t.node, t.part))
        if len(ids) != len(t.ids) or not found.all() or _digest(stored[positions]) != _digest(t.coefficients):
            raise ForwardIndexError(
                f"The forward index at {index.path} holds {len(ids)} document coefficient rows of node "
                f"{t.node!r}; the bundle has {len(t.ids)} (or their checksum differs).", path=str(index.path))


def _keys(column: Any) -> np.ndarray:
    keys = column.to_numpy(zero_copy_only=False)
    return keys.astype(str) if keys.dtype.kind in "OU" else keys


def _not_intact(name: str, version: str, exc: Exception) -> DeploymentError:
    return DeploymentError(f"Version {version} of model {name!r} is not intact: {exc}", model=name)


def _online_moment(store: Any, features: list[str]) -> dt.datetime | None:
    """The moment the online store reflects for ``features`` (newest event pushed), so that the index
    serves the same values as the online store; None (now) if they were never pushed online."""
    moments = [store.catalog.describe(f)["online"].get("max_event_ts") for f in features]
    parsed = [dt.datetime.fromisoformat(str(m)) for m in moments if m]
    return max((m if m.tzinfo else m.replace(tzinfo=dt.timezone.utc)) for m in parsed) if parsed else None


def _deployment(root: Path, name: str, alias: str, entry: dict[str, Any]) -> Deployment:
    bundle = Path(entry["bundle_path"])
    return Deployment(
        name=name, alias=alias, version=str(entry["version"]), generation=entry["generation"],
        index_path=root / "deployments" / name / "generations" / entry["generation"],
        bundle_path=bundle if bundle.is_absolute() else root / bundle, deployed_at=entry["deployed_at"],
    )


def _entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [*doc["aliases"].values(), *(e for es in doc["history"].values() for e in es)]


def _versions(doc: dict[str, Any]) -> set[str]:
    return {str(e["version"]) for e in _entries(doc)}


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)


def _digest(array: np.ndarray) -> str:
    array = np.asarray(array)
    if array.dtype.kind in "US" or array.dtype == object:
        return hashlib.sha256("\0".join(array.astype(str).tolist()).encode()).hexdigest()
    dtype = np.float64 if array.dtype.kind == "f" else np.int64
    return hashlib.sha256(np.ascontiguousarray(array, dtype=dtype).tobytes()).hexdigest()


def _relative(path: Path, workspace: Workspace) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(workspace.root))
    except ValueError:
        return str(path)


def _safe(version: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in version)


def _check_alias(alias: str) -> None:
    # The registry mirrors the alias, so the same names are allowed (MLflow reserves latest and v<n>).
    if (not isinstance(alias, str) or not alias or not all(c.isalnum() or c in "_-" for c in alias)
            or alias == "latest" or (alias[:1] == "v" and alias[1:].isdigit())):
        raise DeploymentError(f"Alias {alias!r} is not allowed: use letters, digits, '_' and '-' (champion, "
                              "challenger, arm-b), and not 'latest' or 'v<number>'.")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
