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
from proml_lab.training.design import DesignTable, design_table, is_spark

if TYPE_CHECKING:
    import pandas as pd

    from proml_lab.training.tracking import RunLogger

__all__ = ["TrainedModel", "evaluate_scores", "train"]

Callback = Callable[[dict[str, Any]], None]
PROBABILITY_OPS = ("Sigmoid", "LogisticScorer")  # a score made by these is a probability; others, a margin


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
        from proml_lab.quasar.engine.frame import score_frame, score_node

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
        from proml_lab.quasar.engine.frame import score_node

        probability = getattr(self.ir.node(score_node(self.ir)), "op", "") in PROBABILITY_OPS
        return evaluate_scores(np.asarray(data[label], np.float64), self.score(data), names, probability=probability,
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
    _check_frame(data, label, "training data")  # a Spark frame stays on Spark: scored and fitted there
    if validation is not None:  # validation rows are scored locally: they are held-out, small
        validation = validation.toPandas() if is_spark(validation) else validation
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
    data: Any            # pandas or Spark DataFrame
    validation: Any      # pandas DataFrame or None
    weight: str | None
    callback: Callback

    def table(self, node: irm.Trainable, parts: dict[str, Any], offset: Any = None) -> DesignTable:
        m = self.model
        keep = [c for c in (m.label, m.member_id_column, m.document_id_column, self.weight) if c]
        return design_table(m.ir, m.state, node, self.data, self.validation, parts, keep=keep, offset=offset,
                            member_id_column=m.member_id_column, document_id_column=m.document_id_column)


def _fit_glmix(ctx: _Context, table: DesignTable, spec: Any) -> Any:
    from proml_lab.training.glmix import fit_glmix, fit_glmix_spark

    fit = fit_glmix_spark if table.spark else fit_glmix
    return fit(table.train, spec, label=ctx.model.label, weight=ctx.weight, offset=table.offset,
               validation=table.validation, callback=ctx.callback)


def _train_glmix(node: irm.Trainable, ctx: _Context) -> tuple[Any, Any]:
    from proml_lab.training.glmix import GLMixSpec, RandomEffect

    params = dict(node.params.get("params") or {})
    model = ctx.model
    parts: dict[str, Any] = {"features": node.params.get("features", [])}
    ids = {"per_member": model.member_id_column, "per_document": model.document_id_column}
    for part, id_col in ids.items():
        if params.get(part):
            if id_col not in ctx.data.columns:
                raise TrainingError(f"node {node.id!r} has a {part} part but the data has no {id_col!r} "
                                    f"column", node=node.id)
            parts[part] = params[part]
    table = ctx.table(node, parts, offset=params.get("offset"))
    effects = tuple(RandomEffect(part, ids[part], tuple(table.columns[part]), l2=_part_l2(params, part),
                                 lower_bound=int(params.get("lower_bound", 1)),
                                 upper_bound=params.get("upper_bound"), intercept=False)
                    for part in ("per_member", "per_document") if part in parts)
    spec = GLMixSpec(family=params.get("family", "logistic"), features=tuple(table.columns["features"]),
                     l2=float(params.get("l2", 1.0)), l1=float(params.get("l1", 0.0)), random_effects=effects,
                     passes=int(params.get("passes", 2)), max_iter=int(params.get("max_iter", 100)))
    fitted = _fit_glmix(ctx, table, spec)
    state = fitted.to_quasar_state()
    if table.vocabularies:
        state["vocabularies"] = table.vocabularies
    return state, fitted


def _train_linear(node: irm.Trainable, ctx: _Context) -> tuple[Any, Any]:
    from proml_lab.training.glmix import GLMixSpec

    params = dict(node.params.get("params") or {})
    if any(ctx.model.ir.node(e["$ref"]).type in ("Categorical", "String")
           for e in node.params.get("features", []) if isinstance(e, dict) and "$ref" in e):
        raise TrainingError(f"node {node.id!r} ({node.op}) takes numeric inputs; one-hot encode "
                            f"categorical ones with OneHot(...)", node=node.id)
    table = ctx.table(node, {"features": node.params.get("features", [])})
    family = "logistic" if node.op == "LogisticScorer" else "linear"
    spec = GLMixSpec(family=family, features=tuple(table.columns["features"]), l2=float(params.get("l2", 0.0)),
                     l1=float(params.get("l1", 0.0)), passes=1)
    fitted = _fit_glmix(ctx, table, spec)
    fixed_state = fitted.to_quasar_state()["fixed"]
    return {"coefficients": np.asarray(fixed_state["coefficients"], np.float64),
            "intercept": float(fixed_state["intercept"])}, fitted


def _train_trees(node: irm.Trainable, ctx: _Context) -> tuple[Any, Any]:
    from proml_lab.training.trees import fit_trees, fit_trees_spark

    params = dict(node.params.get("params") or {})
    table = ctx.table(node, {"features": node.params.get("features", [])})
    cols, label = table.columns["features"], ctx.model.label
    xgb_params = {"max_depth": int(params.get("max_depth", 6)),
                  "eta": float(params.get("learning_rate", 0.3)),
                  "objective": params.get("objective", "binary:logistic")}
    rounds = int(params.get("num_trees", 100))
    if table.spark:
        booster = fit_trees_spark(table.train, cols, label, params=xgb_params, num_rounds=rounds,
                                  weight_col=ctx.weight)
        return booster, booster
    eval_set = None
    if table.validation is not None:
        eval_set = (table.validation[cols].to_numpy(np.float32), table.validation[label].to_numpy(np.float64),
                    None)
    weight = table.train[ctx.weight].to_numpy(np.float64) if ctx.weight else None

    def on_round(round_: int, metrics: dict[str, float]) -> None:
        ctx.callback({"event": "round", "round": round_, **metrics})

    booster = fit_trees(table.train[cols].to_numpy(np.float32), table.train[label].to_numpy(np.float64),
                        params=xgb_params, num_rounds=rounds, weight=weight, eval_set=eval_set,
                        callback=on_round)
    return booster, booster


_TRAINERS: dict[str, Callable[[irm.Trainable, _Context], tuple[Any, Any]]] = {
    "GLMix": _train_glmix,
    "TreeEnsemble": _train_trees,
    "LogisticScorer": _train_linear,
    "LinearScorer": _train_linear,
}


# ---- helpers ---------------------------------------------------------------------------------------------


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


def _check_frame(data: Any, label: str, what: str) -> None:
    if not hasattr(data, "columns"):
        raise TrainingError(f"the {what} must be a pandas or Spark DataFrame; got {type(data).__name__}")
    if (data.isEmpty() if is_spark(data) else len(data) == 0):
        raise TrainingError(f"the {what} has no rows")
    if label not in data.columns:
        raise TrainingError(f"the {what} has no label column {label!r}; columns: "
                            f"{', '.join(map(str, list(data.columns)[:20]))}")


def _fingerprint(data: Any) -> str:
    """A stable fingerprint of the training rows (columns, row count and a hash of the values)."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(",".join(map(str, data.columns)).encode())
    if is_spark(data):  # row count and an order-independent sum of row hashes, in one Spark job
        from pyspark.sql import functions as F

        simple = [f.name for f in data.schema.fields if f.dataType.typeName() not in ("array", "map", "struct")]
        row = data.select(F.count(F.lit(1)).alias("n"),
                          F.sum(F.xxhash64(*[F.col(c) for c in simple]).cast("decimal(38,0)")).alias("h")).first()
        h.update(f"{row['n']}:{row['h']}".encode())
        return h.hexdigest()[:16]
    h.update(str(len(data)).encode())
    hashable = data[[c for c in data.columns if data[c].dtype != object]]
    h.update(pd.util.hash_pandas_object(hashable, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def _part_l2(params: Mapping[str, Any], part: str) -> float:
    value = params.get(f"{part}_l2")
    return float(params.get("l2", 1.0) if value is None else value)


def _column(data: Any, name: str) -> np.ndarray | None:
    return data[name].to_numpy() if name in data.columns else None


def evaluate_scores(y: np.ndarray, score: np.ndarray, names: list[str], *, probability: bool,
                    group: np.ndarray | None) -> dict[str, float]:
    """Metrics (``auc``, ``logloss``, ``rmse``, ``ndcg@K``, ``precision@K``) of scores against labels;
    ``probability`` says the score is already a probability (else logloss applies a sigmoid); ranking
    metrics group rows by ``group`` (the member id)."""
    from proml_lab.training import metrics as m

    out: dict[str, float] = {}
    for name in names:
        base, _, k = name.partition("@")
        if base == "auc":
            out[name] = m.auc(y, score)
        elif base == "logloss":
            out[name] = m.logloss(y, score if probability else 1.0 / (1.0 + np.exp(-score)))
        elif base == "rmse":
            out[name] = m.rmse(y, score)
        elif base in ("ndcg", "precision") and group is not None:
            fn = m.ndcg_at_k if base == "ndcg" else m.precision_at_k
            out[name] = fn(y, score, group, int(k or 10))
        else:
            raise TrainingError(f"unknown metric {name!r}; use auc, logloss, rmse, ndcg@K or precision@K "
                                f"(ranking metrics need a member id column)")
    return out


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
    run.log_params({"program": ir.name or "", "label": label,
                    "train_rows": data.count() if is_spark(data) else len(data),
                    "validation_rows": 0 if validation is None else len(validation)})
    for node in todo:
        params = dict(node.params.get("params") or {})
        run.log_params({k: v for k, v in params.items() if not isinstance(v, list | dict)},
                       prefix=f"{node.id}.")
        run.log_params({"op": node.op}, prefix=f"{node.id}.")
    if source is not None:
        run.log_text(source, "program.quasar")
    run.log_text(ir.dumps(), "ir.json")
