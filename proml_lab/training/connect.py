"""Photon-Connect: train every trainable node of a Quasar program, in DAG order.

``train(program, data)`` reads a compiled program and a table of labelled (member, document) rows with a
column per input feature (what :meth:`FeatureStore.get_training_data` returns). For each trainable node,
upstream nodes are computed with the same operator code that serves (pairwise scoring over the frame:
:func:`~proml_lab.quasar.engine.score_frame` locally, :class:`~proml_lab.quasar.engine.SparkEngine` on
Spark), the node's design is assembled from its arguments, and the node's trainer fits it:

=================================  ===================================================================
operator                           trainer
=================================  ===================================================================
``GLMix``                          coordinate descent: fixed effect + per-member + per-document parts
``TreeEnsemble``                   XGBoost (``tree_method="hist"``; ``device="cuda"`` when a GPU is there)
``LogisticScorer``/``LinearScorer``  a GLMix fixed effect alone (logistic / linear family)
=================================  ===================================================================

A later node sees the earlier nodes' trained state, so a GLMix whose ``offset`` is a tree ensemble's
margin trains on top of the trees. Progress goes to ``callback`` as dicts (the notebook layer turns them
into a progress bar); an optional :class:`~proml_lab.training.tracking.RunLogger` receives parameters,
per-pass metrics, the program and the final metrics.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from proml_lab.errors import TrainingError
from proml_lab.quasar import ir as irm

if TYPE_CHECKING:
    import pandas as pd

    from proml_lab.training.tracking import RunLogger

__all__ = ["TrainedModel", "train"]

Callback = Callable[[dict[str, Any]], None]
_LOWER_IS_BETTER = ("logloss", "rmse", "deviance")


@dataclass
class TrainedModel:
    """A program with every trainable node fitted: ready to score, evaluate and bundle.

    ``state`` maps node ids to what the operators read; ``models`` keeps the richer fitted objects
    (a :class:`~proml_lab.training.glmix.GLMixModel` with its coefficient tables, a Booster).
    """

    ir: irm.IR
    source: str | None
    label: str
    state: dict[str, Any]
    models: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    data_fingerprint: str = ""
    member_id_column: str = "member_id"
    document_id_column: str = "job_id"
    run_id: str | None = None

    @property
    def name(self) -> str | None:
        return self.ir.name

    @property
    def features(self) -> list[str]:
        """The marketplace features the program reads."""
        return sorted({n.feature for n in self.ir.nodes if isinstance(n, irm.Input)})

    def engine(self) -> Any:
        """A :class:`~proml_lab.quasar.engine.LocalEngine` over the trained state (for ranking)."""
        from proml_lab.quasar.engine import LocalEngine

        return LocalEngine(self.ir, state=self.state)

    def score(self, data: pd.DataFrame, node: str | None = None) -> np.ndarray:
        """The value of *node* (default: the score the program orders by) for every row of *data*."""
        from proml_lab.quasar.engine import score_frame

        node = node or score_node(self.ir)
        out = score_frame(self.ir, data, [node], state=self.state, **self._id_columns(data))
        return np.asarray(out[node], dtype=np.float64)

    def evaluate(self, data: pd.DataFrame, *, metrics: Sequence[str] | None = None,
                 label: str | None = None) -> dict[str, float]:
        """Metrics of the program's score on labelled *data* (default: the TRAINING CONFIG's metrics)."""
        label = label or self.label
        if label not in data.columns:
            raise TrainingError(f"the data has no label column {label!r}")
        names = list(metrics or _config_metrics(self.ir))
        return _evaluate(np.asarray(data[label], np.float64), self.score(data), names,
                         group=_column(data, self.member_id_column))

    def _id_columns(self, data: Any) -> dict[str, str | None]:
        cols = set(data.columns)
        return {"member_id_column": self.member_id_column if self.member_id_column in cols else None,
                "document_id_column": self.document_id_column if self.document_id_column in cols else None}


def train(
    program: Any,
    data: Any,
    *,
    label: str | None = None,
    validation: Any = None,
    catalog: Any = None,
    state: Mapping[str, Any] | None = None,
    member_id_column: str = "member_id",
    document_id_column: str = "job_id",
    weight: str | None = None,
    callback: Callback | None = None,
    run: RunLogger | None = None,
) -> TrainedModel:
    """Train every trainable node of *program* on *data*, in DAG order.

    Parameters
    ----------
    program : str, CheckedProgram or IR
        Quasar source (checked against *catalog* when given), or an already compiled program.
    data : pandas or Spark DataFrame
        One row per (member, document) with the label and a column per input feature.
    label : str, optional
        The label column; default: ``TRAINING CONFIG {label: ...}``.
    validation : DataFrame, optional
        Held-out rows: GLMix keeps its best pass on them, and the returned metrics are measured on them.
    state : mapping, optional
        Already trained nodes (their ids); they are not retrained.
    callback : callable, optional
        Receives progress events: ``{"event": "node", "node", "op", "index", "total"}``, the trainers'
        own events (``"pass"``, ``"coordinate"``, ``"round"``) and ``{"event": "done", "metrics"}``.
    run : RunLogger, optional
        An open MLflow run to log to.

    Examples
    --------
    >>> model = train(SOURCE, frame, validation=held_out)          # doctest: +SKIP
    >>> model.metrics                                              # doctest: +SKIP
    {'auc': 0.79, 'ndcg@10': 0.52}
    """
    ir, source = _compile(program, catalog)
    label = label or _config_label(ir)
    is_spark = hasattr(data, "sparkSession")
    data = _to_pandas(data) if is_spark else data  # Spark frames are scored on Spark, then fitted locally
    _check_frame(data, label, "training data")
    if validation is not None:
        validation = _to_pandas(validation) if hasattr(validation, "sparkSession") else validation
        _check_frame(validation, label, "validation data")
    emit = callback or (lambda event: None)
    trained = dict(state or {})
    model = TrainedModel(ir, source, label, trained, member_id_column=member_id_column,
                         document_id_column=document_id_column, data_fingerprint=_fingerprint(data))
    reach = set(ir.reachable())
    nodes = [ir.node(i) for i in ir.topological_order()]
    todo = [n for n in nodes if isinstance(n, irm.Trainable) and n.id in reach and n.id not in trained]
    if run is not None:
        _log_start(run, ir, source, label, data, validation, todo)
    started = time.perf_counter()
    for index, node in enumerate(todo):
        emit({"event": "node", "node": node.id, "op": node.op, "index": index, "total": len(todo)})
        trainer = _TRAINERS.get(node.op)
        if trainer is None:
            raise TrainingError(f"node {node.id!r} ({node.op}) has no trainer; pass its trained state "
                                f"with state={{{node.id!r}: ...}}", node=node.id)
        t0 = time.perf_counter()
        ctx = _Context(model, data, validation, weight, _node_callback(emit, run, node.id))
        trained[node.id], model.models[node.id] = trainer(node, ctx)
        model.history.append({"node": node.id, "op": node.op, "seconds": time.perf_counter() - t0})
    if validation is not None:
        model.metrics = model.evaluate(validation)
    model.history.append({"node": None, "op": "total", "seconds": time.perf_counter() - started})
    if run is not None:
        run.log_metrics(model.metrics)
        run.log_metrics({"train_seconds": time.perf_counter() - started})
        model.run_id = run.run_id
    emit({"event": "done", "metrics": dict(model.metrics)})
    return model


# ---- trainers --------------------------------------------------------------------------------------------


@dataclass
class _Context:
    model: TrainedModel
    data: Any
    validation: Any
    weight: str | None
    callback: Callback

    def design(self, node: irm.Trainable, entries: Sequence[Any], part: str,
               vocab: dict[str, list[str]]) -> tuple[Any, Any, list[str]]:
        """The numeric design of *entries* on training and validation rows, and its column names."""
        refs = [e["$ref"] for e in entries if isinstance(e, dict) and "$ref" in e]
        train = _node_values(self.model, self.data, refs)
        val = _node_values(self.model, self.validation, refs) if self.validation is not None else None
        cols: dict[str, Any] = {}
        vcols: dict[str, Any] = {}
        for i, entry in enumerate(entries):
            name = f"{part}.{i}"
            if isinstance(entry, int | float) and not isinstance(entry, bool):
                cols[name] = np.full(len(self.data), float(entry))
                if val is not None:
                    vcols[name] = np.full(len(self.validation), float(entry))
                continue
            if not (isinstance(entry, dict) and "$ref" in entry):
                raise TrainingError(f"node {node.id!r}: cannot train on the literal {entry!r} in {part}",
                                    node=node.id)
            ref = entry["$ref"]
            kind = self.model.ir.node(ref).type
            if kind in ("Categorical", "String"):
                text = np.asarray(train[ref]).astype(str)
                levels = sorted(np.unique(text).tolist())
                vocab[name] = levels
                vtext = np.asarray(val[ref]).astype(str) if val is not None else None
                for level in levels:
                    cols[f"{name}={level}"] = (text == level).astype(np.float64)
                    if vtext is not None:
                        vcols[f"{name}={level}"] = (vtext == level).astype(np.float64)
                continue
            for suffix, column in _numeric_columns(train[ref], f"{name}:{ref}"):
                cols[suffix] = column
            if val is not None:
                for suffix, column in _numeric_columns(val[ref], f"{name}:{ref}"):
                    vcols[suffix] = column
        import pandas as pd

        frame = pd.DataFrame(cols, index=self.data.index)
        vframe = pd.DataFrame(vcols, index=self.validation.index) if val is not None else None
        return frame, vframe, list(cols)


def _train_glmix(node: irm.Trainable, ctx: _Context) -> tuple[Any, Any]:
    from proml_lab.training.glmix import GLMixSpec, RandomEffect, fit_glmix

    params = dict(node.params.get("params") or {})
    vocab: dict[str, list[str]] = {}
    fixed, vfixed, fixed_cols = ctx.design(node, node.params.get("features", []), "features", vocab)
    parts = [fixed]
    vparts = [vfixed]
    effects = []
    model = ctx.model
    for part, id_col in (("per_member", model.member_id_column), ("per_document", model.document_id_column)):
        entries = params.get(part) or []
        if not entries:
            continue
        if id_col not in ctx.data.columns:
            raise TrainingError(f"node {node.id!r} has a {part} part but the data has no {id_col!r} "
                                f"column", node=node.id)
        design, vdesign, cols = ctx.design(node, entries, part, vocab)
        parts.append(design)
        vparts.append(vdesign)
        effects.append(RandomEffect(part, id_col, tuple(cols), l2=_part_l2(params, part),
                                    lower_bound=int(params.get("lower_bound", 1)),
                                    upper_bound=params.get("upper_bound"), intercept=False))
    offset_ref = params.get("offset")
    train_df = _assemble(ctx.data, parts, model, ctx.weight)
    val_df = _assemble(ctx.validation, vparts, model, ctx.weight) if ctx.validation is not None else None
    offset = None
    if offset_ref is not None:
        offset = "__offset__"
        train_df[offset] = _offset_values(model, ctx.data, offset_ref)
        if val_df is not None:
            val_df[offset] = _offset_values(model, ctx.validation, offset_ref)
    spec = GLMixSpec(family=params.get("family", "logistic"), features=tuple(fixed_cols),
                     l2=float(params.get("l2", 1.0)), l1=float(params.get("l1", 0.0)),
                     random_effects=tuple(effects), passes=int(params.get("passes", 2)),
                     max_iter=int(params.get("max_iter", 100)))
    fitted = fit_glmix(train_df, spec, label=model.label, weight=ctx.weight, offset=offset,
                       validation=val_df, callback=ctx.callback)
    state = fitted.to_quasar_state()
    if vocab:
        state["vocabularies"] = vocab
    return state, fitted


def _train_linear(node: irm.Trainable, ctx: _Context) -> tuple[Any, Any]:
    from proml_lab.training.glmix import GLMixSpec, fit_glmix

    params = dict(node.params.get("params") or {})
    vocab: dict[str, list[str]] = {}
    if any(ctx.model.ir.node(e["$ref"]).type in ("Categorical", "String")
           for e in node.params.get("features", []) if isinstance(e, dict) and "$ref" in e):
        raise TrainingError(f"node {node.id!r} ({node.op}) takes numeric inputs; one-hot encode "
                            f"categorical ones with OneHot(...)", node=node.id)
    fixed, vfixed, cols = ctx.design(node, node.params.get("features", []), "features", vocab)
    family = "logistic" if node.op == "LogisticScorer" else "linear"
    spec = GLMixSpec(family=family, features=tuple(cols), l2=float(params.get("l2", 0.0)),
                     l1=float(params.get("l1", 0.0)), passes=1)
    train_df = _assemble(ctx.data, [fixed], ctx.model, ctx.weight)
    val_df = _assemble(ctx.validation, [vfixed], ctx.model, ctx.weight) if vfixed is not None else None
    fitted = fit_glmix(train_df, spec, label=ctx.model.label, weight=ctx.weight, validation=val_df,
                       callback=ctx.callback)
    fixed_state = fitted.to_quasar_state()["fixed"]
    return {"coefficients": np.asarray(fixed_state["coefficients"], np.float64),
            "intercept": float(fixed_state["intercept"])}, fitted


def _train_trees(node: irm.Trainable, ctx: _Context) -> tuple[Any, Any]:
    from proml_lab.training.trees import fit_trees

    params = dict(node.params.get("params") or {})
    fixed, vfixed, _ = ctx.design(node, node.params.get("features", []), "features", {})
    y = ctx.data[ctx.model.label].to_numpy(np.float64)
    eval_set = None
    if vfixed is not None:
        eval_set = (vfixed.to_numpy(np.float32), ctx.validation[ctx.model.label].to_numpy(np.float64), None)
    xgb_params = {"max_depth": int(params.get("max_depth", 6)),
                  "eta": float(params.get("learning_rate", 0.3)),
                  "objective": params.get("objective", "binary:logistic")}
    weight = ctx.data[ctx.weight].to_numpy(np.float64) if ctx.weight else None

    def on_round(round_: int, metrics: dict[str, float]) -> None:
        ctx.callback({"event": "round", "round": round_, **metrics})

    booster = fit_trees(fixed.to_numpy(np.float32), y, params=xgb_params,
                        num_rounds=int(params.get("num_trees", 100)), weight=weight, eval_set=eval_set,
                        callback=on_round)
    return booster, booster


_TRAINERS: dict[str, Callable[[irm.Trainable, _Context], tuple[Any, Any]]] = {
    "GLMix": _train_glmix,
    "TreeEnsemble": _train_trees,
    "LogisticScorer": _train_linear,
    "LinearScorer": _train_linear,
}


# ---- helpers ---------------------------------------------------------------------------------------------


def score_node(ir: irm.IR) -> str:
    """The value node the program's output is ordered by."""
    by_id = {n.id: n for n in ir.nodes}
    node = by_id[ir.output]
    while not isinstance(node, irm.Order):
        src = node.params.get("source")
        if not (isinstance(src, dict) and "$ref" in src):
            raise TrainingError("the program's RETURN is not ordered by a score (no ORDER ... BY)")
        node = by_id[src["$ref"]]
    return str(node.params["by"]["$ref"])


def _compile(program: Any, catalog: Any) -> tuple[irm.IR, str | None]:
    from proml_lab.quasar import compile as compile_program
    from proml_lab.quasar.check import CheckedProgram

    if isinstance(program, irm.IR):
        return program, None
    if isinstance(program, CheckedProgram):
        return program.ir, None
    if isinstance(program, str):
        return compile_program(program, catalog=catalog), program
    raise TrainingError(f"program must be Quasar source text, a CheckedProgram or an IR; got "
                        f"{type(program).__name__}")


def _config_label(ir: irm.IR) -> str:
    label = (ir.training_config or {}).get("label")
    if not label:
        raise TrainingError("no label: pass label=... or write TRAINING CONFIG {label: <column>} in the "
                            "program")
    return str(label)


def _config_metrics(ir: irm.IR) -> list[str]:
    metrics = (ir.training_config or {}).get("metrics")
    return [str(m) for m in metrics] if metrics else ["auc", "logloss"]


def _to_pandas(df: Any) -> Any:
    return df.toPandas()


def _check_frame(data: Any, label: str, what: str) -> None:
    if not hasattr(data, "columns"):
        raise TrainingError(f"the {what} must be a pandas or Spark DataFrame; got {type(data).__name__}")
    if len(data) == 0:
        raise TrainingError(f"the {what} has no rows")
    if label not in data.columns:
        raise TrainingError(f"the {what} has no label column {label!r}; columns: "
                            f"{', '.join(map(str, list(data.columns)[:20]))}")


def _fingerprint(data: Any) -> str:
    """A stable fingerprint of the training rows (columns, row count and a hash of the values)."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(",".join(map(str, data.columns)).encode())
    h.update(str(len(data)).encode())
    hashable = data[[c for c in data.columns if data[c].dtype != object]]
    h.update(pd.util.hash_pandas_object(hashable, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def _node_values(model: TrainedModel, data: Any, refs: list[str]) -> dict[str, np.ndarray]:
    """Each referenced node's values on *data* (inputs read from their feature column)."""
    from proml_lab.quasar.engine import score_frame

    refs = list(dict.fromkeys(refs))
    computed = [r for r in refs if not isinstance(model.ir.node(r), irm.Input)]
    scored = score_frame(model.ir, data, computed, state=model.state, **model._id_columns(data)) \
        if computed else None
    out: dict[str, np.ndarray] = {}
    for r in refs:
        node = model.ir.node(r)
        if isinstance(node, irm.Input):
            if node.feature not in data.columns:
                raise TrainingError(f"the data has no column for input feature {node.feature!r}")
            out[r] = data[node.feature].to_numpy()
        else:
            out[r] = scored[r].to_numpy()
    return out


def _numeric_columns(values: Any, name: str) -> list[tuple[str, np.ndarray]]:
    arr = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)
    if arr.dtype == object:  # vectors: one column per component
        try:
            mat = np.stack([np.asarray(v, dtype=np.float64) for v in arr]) if len(arr) else np.zeros((0, 1))
        except (TypeError, ValueError):
            raise TrainingError(f"design column {name!r} is neither numeric nor a vector") from None
        return [(f"{name}[{j}]", mat[:, j]) for j in range(mat.shape[1])]
    return [(name, arr.astype(np.float64))]


def _assemble(data: Any, parts: list[Any], model: TrainedModel, weight: str | None) -> Any:
    import pandas as pd

    keep = [c for c in (model.label, model.member_id_column, model.document_id_column, weight)
            if c is not None and c in data.columns]
    frame = pd.concat([*parts, data[keep]], axis=1)
    return frame.loc[:, ~frame.columns.duplicated()]


def _offset_values(model: TrainedModel, data: Any, ref: Any) -> np.ndarray:
    if isinstance(ref, int | float):
        return np.full(len(data), float(ref))
    return np.asarray(_node_values(model, data, [ref["$ref"]])[ref["$ref"]], dtype=np.float64)


def _part_l2(params: Mapping[str, Any], part: str) -> float:
    value = params.get(f"{part}_l2")
    return float(params.get("l2", 1.0) if value is None else value)


def _column(data: Any, name: str) -> np.ndarray | None:
    return data[name].to_numpy() if name in data.columns else None


def _evaluate(y: np.ndarray, score: np.ndarray, names: list[str], *, group: np.ndarray | None) -> dict[str, float]:
    from proml_lab.training import metrics as m

    out: dict[str, float] = {}
    for name in names:
        base, _, k = name.partition("@")
        if base == "auc":
            out[name] = m.auc(y, score)
        elif base == "logloss":
            out[name] = m.logloss(y, _probability(score))
        elif base == "rmse":
            out[name] = m.rmse(y, score)
        elif base in ("ndcg", "precision") and group is not None:
            fn = m.ndcg_at_k if base == "ndcg" else m.precision_at_k
            out[name] = fn(y, score, group, int(k or 10))
        else:
            raise TrainingError(f"unknown metric {name!r}; use auc, logloss, rmse, ndcg@K or precision@K "
                                f"(ranking metrics need a member id column)")
    return out


def _probability(score: np.ndarray) -> np.ndarray:
    """Scores already in [0, 1] are probabilities; anything else is a margin."""
    if np.all((score >= 0) & (score <= 1)):
        return score
    return 1.0 / (1.0 + np.exp(-score))


def _node_callback(emit: Callback, run: RunLogger | None, node_id: str) -> Callback:
    def forward(event: dict[str, Any]) -> None:
        event = {**event, "node": node_id}
        emit(event)
        if run is not None and event.get("event") in ("pass", "round"):
            step = int(event.get("pass", event.get("round", 0)))
            numbers = {k: v for k, v in event.items() if k not in ("event", "node", "pass", "round")}
            run.log_metrics(numbers, step=step, prefix=f"{node_id}.")

    return forward


def _log_start(run: RunLogger, ir: irm.IR, source: str | None, label: str, data: Any, validation: Any,
               todo: list[irm.Trainable]) -> None:
    run.log_params({"program": ir.name or "", "label": label, "train_rows": len(data),
                    "validation_rows": 0 if validation is None else len(validation)})
    for node in todo:
        params = dict(node.params.get("params") or {})
        run.log_params({k: v for k, v in params.items() if not isinstance(v, list | dict)},
                       prefix=f"{node.id}.")
        run.log_params({"op": node.op}, prefix=f"{node.id}.")
    if source is not None:
        run.log_text(source, "program.quasar")
    run.log_text(ir.dumps(), "ir.json")
