"""Deployed model versions loaded for serving, and the per-request assembly of a ranking query.

A :class:`ServingModel` is one deployed version: its bundle (program, global state), its forward-index
generation (document features and per-document coefficients, memory-mapped) and a local engine whose state
holds everything but the per-member coefficients. Those are read from the online store per request — only
the requesting member's row — and passed to the engine for that call, so a request never mixes versions
and a new version never needs the service restarted.

:class:`ModelCache` resolves ``(model, alias)`` to a deployment once per request (one ``stat`` of the
deployment pointer), loads a version the first time it is seen (a watcher thread preloads new versions so
requests rarely wait), and keeps the newest few versions of each model in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from proml_lab.errors import ProMLError
from proml_lab.quasar import ir as irm

__all__ = ["ModelCache", "NotDeployedError", "RankedItems", "RequestError", "ServingModel"]

_DOCUMENT_PART, _MEMBER_PART = "per_document", "per_member"


class NotDeployedError(ProMLError):
    """No deployment answers for this model and alias (HTTP 404)."""


class RequestError(ProMLError):
    """The request cannot be served as asked: a bad id, filter or context value (HTTP 422)."""


@dataclass
class RankedItems:
    """What one query returns: documents in rank order, their scores and (with explain) node values."""

    document_ids: np.ndarray
    scores: np.ndarray
    explain: dict[str, np.ndarray]
    candidates: int
    unknown_candidates: list[Any]
    member_known: bool


class ServingModel:
    """One deployed model version, ready to rank (see the module docstring)."""

    def __init__(self, deployment: Any, *, features: Any, store: Any) -> None:
        from proml_lab.deploy.bundle import load_bundle
        from proml_lab.deploy.deployer import coefficient_key
        from proml_lab.deploy.forward_index import ForwardIndex
        from proml_lab.quasar.engine import LocalEngine
        from proml_lab.quasar.engine.frame import score_node, scoring_ir

        self.deployment = deployment
        self.name, self.version = deployment.name, str(deployment.version)
        self.bundle = load_bundle(deployment.bundle_path)
        self.index = ForwardIndex.open(deployment.index_path)
        self.ir: irm.IR = self.bundle.ir
        self.store = store
        inputs = [n for n in self.ir.nodes if isinstance(n, irm.Input) and n.id in set(self.ir.reachable())]
        self.member_features = sorted({n.feature for n in inputs if n.scope == "member"})
        self.document_features = sorted({n.feature for n in inputs if n.scope == "document"})
        self.request_features = sorted({n.feature for n in inputs if n.scope == "request"})
        self._member_reader = features.online_reader("member", self.member_features) if self.member_features \
            else None
        # a derived feature has a value even for an unknown member (computed from missing inputs)
        self._stored_member = {r.name for r in features.catalog.resolve(self.member_features) if r.kind != "derived"}
        self.ids = self.index.ids
        self._documents = {f: self.index.column(f) for f in self.document_features}
        # Global state from the bundle; per-document tables from the index; per-member tables per request.
        self.state: dict[str, Any] = {}
        self.member_nodes: dict[str, str] = {}  # GLMix node -> its online-store model key
        for node_id, node_state in self.bundle.state.items():
            if isinstance(node_state, Mapping) and (_MEMBER_PART in node_state or _DOCUMENT_PART in node_state):
                node_state = dict(node_state)
                if _DOCUMENT_PART in node_state:
                    doc_ids, coefs = self.index.coefficients(node_id, _DOCUMENT_PART)
                    node_state[_DOCUMENT_PART] = {"ids": doc_ids, "coefficients": coefs}
                if _MEMBER_PART in node_state:
                    width = np.asarray(node_state[_MEMBER_PART]["coefficients"]).shape[1]
                    node_state[_MEMBER_PART] = {"ids": np.zeros(0, np.int64), "coefficients": np.zeros((0, width))}
                    self.member_nodes[node_id] = coefficient_key(self.name, node_id)
            self.state[node_id] = node_state
        self.engine = LocalEngine(self.ir, state=self.state)
        self.score_node = score_node(self.ir)
        self.scorer = LocalEngine(scoring_ir(self.ir, [self.score_node]), state=self.state)
        self.loaded_at = time.time()

    # ---- online reads -------------------------------------------------------------------------------

    def _member_state(self, member_ids: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
        """Per-member coefficient tables of these members (one online read per GLMix node) and a mask of
        the members that have coefficients."""
        override: dict[str, Any] = {}
        known = np.zeros(len(member_ids), dtype=bool)
        for node_id, key in self.member_nodes.items():
            matrix, found = self.store.read_coefficients(key, self.version, "member", member_ids)
            known |= found
            override[node_id] = {**self.state[node_id],
                                 _MEMBER_PART: {"ids": member_ids[found], "coefficients": matrix[found]}}
        return override, known

    def _member_columns(self, member_ids: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
        if self._member_reader is None:
            return {}, np.zeros(len(member_ids), dtype=bool)
        read = self._member_reader(member_ids)
        columns = {name: _numpy(col) for name, col in read.items()}
        present = np.zeros(len(member_ids), dtype=bool)
        for name, col in columns.items():
            if name in self._stored_member:
                present |= ~_missing(col)
        return columns, present

    def _request_columns(self, context: Mapping[str, Any] | None, n: int) -> dict[str, np.ndarray]:
        context = context or {}
        missing = [f for f in self.request_features if f not in context]
        if missing:
            raise RequestError(f"the model reads request feature(s) {', '.join(missing)}: pass them in "
                               f"'context', e.g. {{\"context\": {{\"{missing[0]}\": ...}}}}")
        return {f: np.repeat(np.asarray([context[f]]), n, axis=0) for f in self.request_features}

    # ---- candidates ----------------------------------------------------------------------------------

    def candidate_rows(self, candidates: Sequence[Any] | None,
                       filters: Mapping[str, Any] | None) -> tuple[np.ndarray | None, list[Any]]:
        """Forward-index rows to rank (None: all documents) and the candidate ids the index lacks."""
        rows: np.ndarray | None = None
        unknown: list[Any] = []
        if candidates is not None:
            wanted = self.coerce_ids(candidates, self.ids, "candidates")
            rows, found = self.index.rows(wanted)
            unknown = [_plain(v) for v in np.asarray(wanted)[~found]]
            rows = np.asarray(rows)[found]
        if filters:
            mask = self._filter_mask(filters, rows)
            rows = (np.flatnonzero(mask) if rows is None else rows[mask])
        return rows, unknown

    def _filter_mask(self, filters: Mapping[str, Any], rows: np.ndarray | None) -> np.ndarray:
        n = len(self.ids) if rows is None else len(rows)
        mask = np.ones(n, dtype=bool)
        for name, cond in filters.items():
            if name not in self.index.column_names:
                known = ", ".join(sorted(c for c in self.index.column_names if not c.startswith("__")))
                raise RequestError(f"cannot filter on {name!r}: the forward index holds {known}")
            col = self.index.column(name)
            col = col if rows is None else col[rows]
            mask &= _condition(name, col, cond)
        return mask

    @staticmethod
    def coerce_ids(values: Any, like: np.ndarray, what: str) -> np.ndarray:
        """Ids converted to the dtype of the model's ids (JSON strings of integer ids are accepted)."""
        arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=object)
        if np.asarray(like).dtype.kind in "iu":
            try:
                return arr.astype(np.int64) if len(arr) else np.zeros(0, np.int64)
            except (TypeError, ValueError, OverflowError):
                raise RequestError(f"{what} must be integer ids for this model; got {list(arr[:3])}") from None
        return arr.astype(str)

    # ---- ranking --------------------------------------------------------------------------------------

    def rank(self, member_id: Any, *, k: int | None = None, candidates: Sequence[Any] | None = None,
             filters: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None,
             explain: bool = False) -> RankedItems:
        """Rank the candidates (default: every document of the index) for one member."""
        from proml_lab.quasar.engine import QueryBatch

        members = self.coerce_ids([member_id], self._member_key_like(), "member_id")
        rows, unknown = self.candidate_rows(candidates, filters)
        member_cols, present = self._member_columns(members)
        override, known = self._member_state(members)
        n = len(self.ids) if rows is None else len(rows)
        docs = self._documents if rows is None else {f: c[rows] for f, c in self._documents.items()}
        doc_ids = self.ids if rows is None else self.ids[rows]
        batch = QueryBatch(documents=docs, query_index=np.zeros(n, dtype=np.int64), member=member_cols,
                           request=self._request_columns(context, 1), member_ids=members,
                           document_ids=doc_ids, num_queries=1)
        result = self.engine.rank(batch, explain=explain, state=override)
        take = result.document_rows if k is None else result.document_rows[:k]
        details = {}
        if explain:
            details = {node: np.asarray(v)[: len(take)] for node, v in result.explain.items()}
        return RankedItems(doc_ids[take], result.scores[: len(take)], details, n, unknown,
                           bool(present[0] or known[0]))

    def score(self, member_ids: Sequence[Any], document_ids: Sequence[Any], *,
              context: Mapping[str, Any] | None = None, explain: bool = False) -> tuple[np.ndarray, dict, np.ndarray]:
        """The program's score of explicit (member, document) pairs; documents missing from the index
        are reported in the returned mask (their score is NaN)."""
        from proml_lab.quasar.engine import QueryBatch

        members = self.coerce_ids(member_ids, self._member_key_like(), "member_id")
        docs = self.coerce_ids(document_ids, self.ids, "document_id")
        rows, found = self.index.rows(docs)
        rows = np.asarray(rows)
        uniq, inverse = np.unique(members, return_inverse=True)
        member_cols, _ = self._member_columns(uniq)
        override, _ = self._member_state(uniq)
        n = int(found.sum())
        keep = np.flatnonzero(found)
        qi = np.arange(n, dtype=np.int64)
        batch = QueryBatch(
            documents={f: c[rows[keep]] for f, c in self._documents.items()}, query_index=qi,
            member={f: np.asarray(c).take(inverse[keep], axis=0) for f, c in member_cols.items()},
            request=self._request_columns(context, n), member_ids=members[keep],
            document_ids=docs[keep], num_queries=n)
        result = self.scorer.rank(batch, explain=True, state=override)
        order = np.empty(n, dtype=np.int64)
        order[result.document_rows] = np.arange(n)
        scores = np.full(len(docs), np.nan)
        scores[keep] = np.asarray(result.explain[self.score_node], np.float64)[order].reshape(n)
        details: dict[str, np.ndarray] = {}
        if explain:
            for node, values in result.explain.items():
                if node in self.engine._by_id:  # noqa: SLF001 - the program's nodes, not the scoring RETURN
                    details[node] = np.asarray(values)[order]
        return scores, details, found

    def _member_key_like(self) -> np.ndarray:
        """An array of the member id type (from the bundle's per-member table, else the document ids)."""
        for node_state in self.bundle.state.values():
            if isinstance(node_state, Mapping) and _MEMBER_PART in node_state:
                return np.asarray(node_state[_MEMBER_PART]["ids"][:1])
        return self.ids[:1]

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "version": self.version, "generation": self.deployment.generation,
                "documents": int(len(self.ids)), "member_features": self.member_features,
                "document_features": self.document_features, "request_features": self.request_features,
                "metrics": self.bundle.metrics, "loaded_at": self.loaded_at}


class ModelCache:
    """Deployed versions in memory, resolved per request, preloaded by a watcher thread."""

    def __init__(self, workspace: Any, *, keep_versions: int = 2, watch_s: float = 0.5) -> None:
        self.workspace = workspace
        self.keep_versions = keep_versions
        self.watch_s = watch_s
        self._models: dict[tuple[str, str], ServingModel] = {}  # (name, generation) -> model
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._watched: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.load_errors: dict[str, str] = {}

    def get(self, name: str, alias: str) -> ServingModel:
        """The model serving ``name``/``alias`` right now (resolved once; loaded on first use)."""
        from proml_lab.deploy.deployer import resolve

        deployment = resolve(self.workspace, name, alias)
        if deployment is None:
            raise NotDeployedError(f"model {name!r} has no deployment for alias {alias!r}; deploy it with "
                                   f"`proml deploy {name} --alias {alias}`"
                                   + _known_hint(self.workspace))
        self._watched.add((name, alias))
        return self._load(deployment)

    def _load(self, deployment: Any) -> ServingModel:
        key = (deployment.name, str(deployment.generation))
        model = self._models.get(key)
        if model is not None:
            return model
        with self._lock:
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one loader per version; concurrent requests wait for it
            model = self._models.get(key)
            if model is None:
                features = self.workspace.features
                model = ServingModel(deployment, features=features, store=features.online_store)
                with self._lock:
                    self._models[key] = model
                    self._evict(deployment.name)
        return model

    def _evict(self, name: str) -> None:
        mine = sorted((m.loaded_at, k) for k, m in self._models.items() if k[0] == name)
        for _, k in mine[: max(0, len(mine) - self.keep_versions)]:
            del self._models[k]

    def loaded(self) -> list[ServingModel]:
        return list(self._models.values())

    # ---- watcher -------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="proml-model-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _watch(self) -> None:
        from proml_lab.deploy.deployer import resolve

        while not self._stop.wait(self.watch_s):
            for name, alias in list(self._watched):
                try:
                    deployment = resolve(self.workspace, name, alias)
                    if deployment is not None:
                        self._load(deployment)
                        self.load_errors.pop(f"{name}/{alias}", None)
                except Exception as exc:  # noqa: BLE001 - reported by /healthz; requests raise it themselves
                    self.load_errors[f"{name}/{alias}"] = f"{type(exc).__name__}: {exc}"


def _known_hint(workspace: Any) -> str:
    root = workspace.root / "deployments"
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
    return f" (deployed models: {', '.join(names)})" if names else " (nothing is deployed yet)"


def _numpy(column: Any) -> np.ndarray:
    import pyarrow as pa

    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        return np.asarray(column.to_numpy(zero_copy_only=False))
    return np.asarray(column)


def _missing(col: np.ndarray) -> np.ndarray:
    if col.dtype.kind == "f":
        return np.isnan(col).all(axis=tuple(range(1, col.ndim))) if col.ndim > 1 else np.isnan(col)
    return np.array([v is None for v in col], dtype=bool) if col.dtype == object else np.zeros(len(col), bool)


_OPS = {"eq": np.equal, "ne": np.not_equal, "gt": np.greater, "gte": np.greater_equal, "lt": np.less,
        "lte": np.less_equal}


def _condition(name: str, col: np.ndarray, cond: Any) -> np.ndarray:
    """A filter: a value (equality), a list (membership) or ``{"gte": 2, "lt": 5, "in": [...]}``."""
    if isinstance(cond, Mapping):
        mask = np.ones(len(col), dtype=bool)
        for op, value in cond.items():
            if op == "in":
                mask &= _isin(col, value)
            elif op in _OPS:
                mask &= _compare(name, col, op, value)
            else:
                raise RequestError(f"unknown filter operator {op!r} on {name!r}; use one of "
                                   f"{', '.join([*_OPS, 'in'])}")
        return mask
    if isinstance(cond, list):
        return _isin(col, cond)
    return _compare(name, col, "eq", cond)


def _isin(col: np.ndarray, values: Any) -> np.ndarray:
    if not isinstance(values, list):
        raise RequestError(f"an 'in' filter takes a list of values; got {values!r}")
    if col.dtype.kind == "f":
        try:
            return np.isin(col, np.asarray(values, dtype=np.float64))
        except (TypeError, ValueError):
            raise RequestError(f"filter values must be numbers for this numeric feature; got {values!r}") from None
    return np.isin(col.astype(str), np.asarray([str(v) for v in values]))


def _compare(name: str, col: np.ndarray, op: str, value: Any) -> np.ndarray:
    if col.dtype.kind == "f":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestError(f"{name!r} is numeric: filter it with a number; got {value!r}")
        return _OPS[op](col, float(value))
    if col.ndim > 1:
        raise RequestError(f"{name!r} is a vector feature; it cannot be filtered on")
    if op not in ("eq", "ne"):
        raise RequestError(f"{name!r} is categorical: filter it with a value, a list or eq/ne/in; got {op!r}")
    return _OPS[op](col.astype(str), str(value))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
