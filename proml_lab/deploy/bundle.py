"""The model bundle: one self-contained directory that scores exactly like the trained model.

Layout (``FORMAT`` 1)::

    <bundle>/
      manifest.json            name, version, features, metrics, label, data fingerprint, run id, created
                               by/at, id columns, the trainable nodes, and sha256 + size of every other file
      program.quasar           the Quasar source (a comment pointing at ir.json when built from an IR)
      ir.json                  the compiled program
      global/<node>.json       GLMix fixed effect + vocabularies; linear / logistic scorers; any mapping state
      global/<node>.xgboost.json   a tree ensemble (XGBoost JSON model)
      global/<node>.keras      a Keras model
      coefficients/member.parquet    ``id`` + one list<double> column per GLMix node with a per-member part
      coefficients/document.parquet  the same for per-document parts

Several GLMix nodes share one table per entity; a node without coefficients for an id holds null there.
Loading needs nothing but the directory, and checks every file against the manifest first.

Examples
--------
>>> bundle = save_bundle(trained, "out/jobs")                  # doctest: +SKIP
>>> load_bundle("out/jobs").score(frame)                       # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from proml_lab.errors import BundleError
from proml_lab.quasar import ir as irm

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

    from proml_lab.training.connect import TrainedModel
    from proml_lab.workspace import Workspace

__all__ = ["ARTIFACT_PATH", "FORMAT", "Bundle", "CoefficientTable", "load_bundle", "log_bundle", "save_bundle"]

FORMAT = 1
ARTIFACT_PATH = "bundle"  # where a run keeps its bundle: runs:/<run_id>/bundle
MANIFEST = "manifest.json"
_PARTS = {"per_member": "member", "per_document": "document"}


@dataclass(frozen=True)
class CoefficientTable:
    """The random-effect coefficients of one GLMix part: row ``i`` of ``coefficients`` belongs to ``ids[i]``."""

    node: str
    part: str            # "per_member" | "per_document"
    entity: str          # "member" | "document"
    ids: np.ndarray
    coefficients: np.ndarray  # float64, (n, d)


class Bundle:
    """A loaded bundle: the program, its trained state and its manifest; scores like the trained model."""

    def __init__(self, path: Path, manifest: dict[str, Any], ir: irm.IR, source: str | None,
                 state: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.ir = ir
        self.source = source
        self.state = state
        self._model: TrainedModel | None = None

    def __repr__(self) -> str:
        return f"Bundle({self.name!r}, version={self.version!r}, path={str(self.path)!r})"

    # ---- manifest views ----------------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        return self.manifest.get("name")

    @property
    def version(self) -> str | None:
        return self.manifest.get("version")

    @property
    def features(self) -> list[str]:
        return list(self.manifest.get("features", []))

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.manifest.get("metrics", {}))

    @property
    def label(self) -> str:
        return str(self.manifest.get("label", ""))

    @property
    def data_fingerprint(self) -> str:
        return str(self.manifest.get("data_fingerprint", ""))

    @property
    def run_id(self) -> str | None:
        return self.manifest.get("run_id")

    @property
    def member_id_column(self) -> str:
        return str(self.manifest.get("member_id_column", "member_id"))

    @property
    def document_id_column(self) -> str:
        return str(self.manifest.get("document_id_column", "job_id"))

    # ---- scoring: exactly TrainedModel's -----------------------------------------------------------

    def to_model(self) -> TrainedModel:
        """A :class:`~proml_lab.training.connect.TrainedModel` over this bundle's state (shared, not copied)."""
        if self._model is None:
            from proml_lab.training.connect import TrainedModel

            self._model = TrainedModel(self.ir, self.source, self.label, self.state, metrics=self.metrics,
                                       data_fingerprint=self.data_fingerprint,
                                       member_id_column=self.member_id_column,
                                       document_id_column=self.document_id_column, run_id=self.run_id)
        return self._model

    def engine(self) -> Any:
        """A :class:`~proml_lab.quasar.engine.LocalEngine` over the bundle's state."""
        return self.to_model().engine()

    def score(self, data: pd.DataFrame, node: str | None = None) -> np.ndarray:
        """The value of *node* (default: the program's ordering score) for every row of *data*."""
        return self.to_model().score(data, node)

    def evaluate(self, data: pd.DataFrame, *, metrics: Sequence[str] | None = None,
                 label: str | None = None) -> dict[str, float]:
        """Metrics of the program's score on labelled *data* (default: the TRAINING CONFIG's)."""
        return self.to_model().evaluate(data, metrics=metrics, label=label)

    def coefficient_tables(self) -> list[CoefficientTable]:
        """Every GLMix random-effect table (per node and part), in node order."""
        out = []
        for node, info in self.manifest.get("nodes", {}).items():
            for part in info.get("tables", {}):
                table = self.state[node][part]
                out.append(CoefficientTable(node, part, _PARTS[part], np.asarray(table["ids"]),
                                            np.asarray(table["coefficients"], np.float64)))
        return out


# ---- save ------------------------------------------------------------------------------------------------


def save_bundle(model: TrainedModel, path: str | os.PathLike[str], *, name: str | None = None,
                version: str | int | None = None, created_by: str | None = None) -> Bundle:
    """Write *model* as a bundle directory at *path*, atomically (an existing bundle there is replaced).

    The bundle is written into a hidden temporary directory next to *path* and renamed into place, so an
    interrupted save leaves nothing at *path*.

    Examples
    --------
    >>> bundle = save_bundle(trained, "bundles/jobs", version="3")   # doctest: +SKIP
    >>> bundle.manifest["files"]["ir.json"]["sha256"]                 # doctest: +SKIP
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        nodes = _write_state(tmp, model)
        _write_text(tmp / "program.quasar", model.source if model.source is not None else _no_source(model.ir))
        _write_text(tmp / "ir.json", model.ir.dumps())
        manifest = _manifest(model, nodes, name=name, version=version, created_by=created_by)
        manifest["files"] = _checksums(tmp)
        _write_text(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n")
        _replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_bundle(target, verify=False)


def _manifest(model: TrainedModel, nodes: dict[str, Any], *, name: str | None, version: str | int | None,
              created_by: str | None) -> dict[str, Any]:
    import getpass
    import math

    from proml_lab import __version__

    try:
        user = created_by or getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        user = "unknown"
    return {"format": FORMAT, "name": name or model.name, "version": None if version is None else str(version),
            "features": model.features, "label": model.label,
            "metrics": {k: float(v) for k, v in model.metrics.items() if math.isfinite(float(v))},
            "data_fingerprint": model.data_fingerprint, "run_id": model.run_id, "created_by": user,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "proml_lab_version": __version__, "member_id_column": model.member_id_column,
            "document_id_column": model.document_id_column, "has_source": model.source is not None,
            "nodes": nodes}


def _write_state(root: Path, model: TrainedModel) -> dict[str, Any]:
    """Write every node's state under ``global/`` and ``coefficients/``; returns the manifest's ``nodes``."""
    (root / "global").mkdir()
    nodes: dict[str, Any] = {}
    tables: dict[str, list[tuple[str, Mapping[str, Any]]]] = {"member": [], "document": []}
    for node_id, state in model.state.items():
        op = _op_of(model.ir, node_id)
        kind, file = _write_global(root / "global", node_id, op, state)
        info: dict[str, Any] = {"op": op, "kind": kind, "file": f"global/{file}"}
        if op == "GLMix" and isinstance(state, Mapping):
            info["tables"] = {}
            for part, entity in _PARTS.items():
                table = state.get(part)
                if table is None:
                    continue
                coefs = np.asarray(table["coefficients"], np.float64)
                info["tables"][part] = {"entity": entity, "dim": int(coefs.shape[1]) if coefs.ndim == 2 else 0,
                                        "rows": int(len(table["ids"]))}
                tables[entity].append((node_id, table))
        nodes[node_id] = info
    if any(tables.values()):
        (root / "coefficients").mkdir()
    for entity, parts in tables.items():
        if parts:
            _write_table(root / "coefficients" / f"{entity}.parquet", parts)
    return nodes


def _op_of(ir: irm.IR, node_id: str) -> str | None:
    for n in ir.nodes:
        if n.id == node_id or (isinstance(n, irm.Trainable) and getattr(n, "state_ref", None) == node_id):
            return getattr(n, "op", None)
    return None


def _write_global(folder: Path, node_id: str, op: str | None, state: Any) -> tuple[str, str]:
    """One node's global state: a mapping as JSON (GLMix without its tables), XGBoost JSON, or Keras."""
    if isinstance(state, Mapping):
        body = {k: v for k, v in state.items() if not (op == "GLMix" and k in _PARTS)}
        _write_text(folder / f"{node_id}.json", json.dumps(_encode(body), indent=1, sort_keys=True,
                                                           allow_nan=False))
        return "json", f"{node_id}.json"
    cls = f"{type(state).__module__}.{type(state).__name__}"
    if cls.startswith("xgboost.") and hasattr(state, "save_model"):
        state.save_model(str(folder / f"{node_id}.xgboost.json"))
        return "xgboost", f"{node_id}.xgboost.json"
    if cls.startswith("keras") and hasattr(state, "save"):
        state.save(str(folder / f"{node_id}.keras"))
        return "keras", f"{node_id}.keras"
    raise BundleError(f"cannot bundle the state of node {node_id!r} ({op}): a {cls} is not a mapping, an "
                      f"XGBoost Booster or a Keras model", file=f"global/{node_id}")


def _write_table(path: Path, parts: list[tuple[str, Mapping[str, Any]]]) -> None:
    """``id`` + one list<double> column per node: the union of the nodes' ids, nulls where a node has none."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    id_lists = [np.asarray(t["ids"]) for _, t in parts]
    if len({a.dtype.kind in "iu" for a in id_lists if len(a)}) > 1:  # ints and text: store all as text
        id_lists = [a.astype(str) for a in id_lists]
    ids = id_lists[0]
    for more in id_lists[1:]:  # union, keeping the first node's order, new ids appended in theirs
        ids = np.concatenate([ids, more[~np.isin(more, ids)]]) if len(more) else ids
    columns = {"id": pa.array(ids.tolist())}
    position = {key: i for i, key in enumerate(ids.tolist())}
    for (node_id, table), node_ids in zip(parts, id_lists, strict=True):
        coefs = np.asarray(table["coefficients"], np.float64)
        d = coefs.shape[1] if coefs.ndim == 2 else 0
        rows = np.fromiter((position[k] for k in node_ids.tolist()), np.int64, len(node_ids))
        full = np.zeros((len(ids), d), np.float64)
        full[rows] = coefs.reshape(len(node_ids), d)
        present = np.zeros(len(ids), bool)
        present[rows] = True
        lengths = np.where(present, d, 0)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        values = full[present].ravel()
        columns[node_id] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.float64()),
                                                    mask=pa.array(~present))
    pq.write_table(pa.table(columns), path)


def _no_source(ir: irm.IR) -> str:
    return (f"// {ir.name or 'this model'} was built from its compiled form, not from Quasar source:\n"
            "// the program is ir.json in this bundle.\n")


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _checksums(root: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        if rel != MANIFEST:
            out[rel] = {"sha256": _sha256(file), "size": file.stat().st_size}
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _replace(tmp: Path, target: Path) -> None:
    """Move the finished *tmp* directory to *target*, replacing what is there (never half of it)."""
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        target.rename(old / "bundle")
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(target)


def log_bundle(workspace: Workspace, model: TrainedModel, *, artifact_path: str = ARTIFACT_PATH) -> str:
    """Save *model*'s bundle as artifact ``bundle`` of its MLflow run; returns ``runs:/<run_id>/bundle``.

    The run may be finished already. The logged bundle has no version (``manifest["version"]`` is null):
    one run can be published under several names and versions; the registry fills the version in when it
    loads a published version.
    """
    from proml_lab.training.tracking import Tracker

    if not model.run_id:
        raise BundleError("the model has no MLflow run to log its bundle to (train it with tracking: "
                          "proml train, %train, or train(..., run=...))")
    client = Tracker(workspace).client
    with tempfile.TemporaryDirectory(prefix="proml-bundle-") as tmp:
        save_bundle(model, Path(tmp) / ARTIFACT_PATH)
        client.log_artifacts(model.run_id, str(Path(tmp) / ARTIFACT_PATH), artifact_path)
    return f"runs:/{model.run_id}/{artifact_path}"


# ---- load ------------------------------------------------------------------------------------------------


def load_bundle(path: str | os.PathLike[str], *, verify: bool = True) -> Bundle:
    """Read the bundle at *path* (nothing else is needed); every file is checked against the manifest.

    Raises
    ------
    BundleError
        The directory is not a bundle, a file is missing or damaged (named in the message), or the bundle
        was written by a newer format.
    """
    root = Path(path)
    manifest = _read_manifest(root)
    if verify:
        _verify(root, manifest)
    ir = irm.IR.from_json(_read(root, "ir.json"))
    source = _read(root, "program.quasar") if manifest.get("has_source", True) else None
    state = _read_state(root, manifest)
    return Bundle(root, manifest, ir, source, state)


def _read_manifest(root: Path) -> dict[str, Any]:
    file = root / MANIFEST
    if not file.is_file():
        raise BundleError(f"{root} is not a model bundle: {MANIFEST} is missing", path=str(root), file=MANIFEST)
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleError(f"bundle {root}: {MANIFEST} is damaged ({e})", path=str(root), file=MANIFEST) from None
    fmt = manifest.get("format") if isinstance(manifest, dict) else None
    if fmt != FORMAT:
        raise BundleError(f"bundle {root}: {MANIFEST} has format {fmt!r}; this ProML Lab reads format "
                          f"{FORMAT}", path=str(root), file=MANIFEST)
    return manifest


def _verify(root: Path, manifest: dict[str, Any]) -> None:
    for rel, expect in manifest.get("files", {}).items():
        file = root / rel
        if not file.is_file():
            raise BundleError(f"bundle {root}: {rel} is missing", path=str(root), file=rel)
        if file.stat().st_size != expect["size"] or _sha256(file) != expect["sha256"]:
            raise BundleError(f"bundle {root}: {rel} is damaged (its sha256 or size differs from "
                              f"{MANIFEST}); publish or copy the bundle again", path=str(root), file=rel)


def _read(root: Path, rel: str) -> str:
    try:
        return (root / rel).read_text(encoding="utf-8")
    except OSError as e:
        raise BundleError(f"bundle {root}: cannot read {rel} ({e})", path=str(root), file=rel) from None


def _read_state(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    for node_id, info in manifest.get("nodes", {}).items():
        kind, file = info["kind"], root / info["file"]
        if kind == "json":
            state[node_id] = _decode(json.loads(_read(root, info["file"])))
        elif kind == "xgboost":
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(str(file))
            state[node_id] = booster
        elif kind == "keras":
            from proml_lab.quasar.ops.registry import lazy_import

            keras = lazy_import("keras", "deep")
            state[node_id] = keras.models.load_model(str(file))
        else:
            raise BundleError(f"bundle {root}: node {node_id!r} has an unknown state kind {kind!r}",
                              path=str(root), file=info["file"])
        for part, t in info.get("tables", {}).items():
            entity = t["entity"]
            if entity not in tables:
                tables[entity] = _read_table(root, f"coefficients/{entity}.parquet")
            state[node_id][part] = _table_state(tables[entity], node_id, int(t["dim"]))
    return state


def _read_table(root: Path, rel: str) -> Any:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    try:
        return pq.read_table(root / rel)
    except (OSError, ValueError) as e:
        raise BundleError(f"bundle {root}: cannot read {rel} ({e})", path=str(root), file=rel) from None


def _table_state(table: Any, node_id: str, dim: int) -> dict[str, Any]:
    """``{"ids": [...], "coefficients": (n, d)}`` of one node: the rows where its column is not null."""
    col = table.column(node_id).combine_chunks()
    present = col.is_valid().to_numpy(zero_copy_only=False)
    ids = table.column("id").to_numpy()[present]
    values = col.flatten().to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    return {"ids": ids.tolist(), "coefficients": values.reshape(int(present.sum()), dim)}


# ---- JSON with arrays --------------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    """JSON-ready: numpy arrays become ``{"__ndarray__": [...], "dtype", "shape"}`` (floats exact: repr)."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.ravel().tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=np.dtype(value["dtype"])).reshape(value["shape"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value
