"""One training job in a workspace: compile → training data → (tune) → train → evaluate → track.

This is what ``proml train``, ``proml demo`` and the ``%train`` magic call. Each job is one MLflow run
(tuning trials are nested as their own runs); the returned :class:`TrainResult` holds the trained model.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proml_lab.errors import TrainingError
from proml_lab.quasar import ir as irm
from proml_lab.training.connect import TrainedModel, train

if TYPE_CHECKING:
    from proml_lab.training.data import TrainingFrames
    from proml_lab.training.tune import TuneResult
    from proml_lab.workspace import Workspace

__all__ = ["TrainResult", "tuning_space", "train_program", "with_params"]

Callback = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    model: TrainedModel
    train_rows: int
    validation_rows: int
    seconds: float
    tuning: TuneResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"program": self.model.name, "run_id": self.model.run_id, "metrics": self.model.metrics,
                "train_rows": self.train_rows, "validation_rows": self.validation_rows,
                "seconds": round(self.seconds, 3), "data_fingerprint": self.model.data_fingerprint,
                "nodes": [h for h in self.model.history if h["node"]],
                "tuning": None if self.tuning is None else {
                    "best_params": self.tuning.best_params, "best_value": self.tuning.best_value,
                    "trials": len(self.tuning.trials), "study": self.tuning.study_name}}


def with_params(ir: irm.IR, overrides: Mapping[str, Mapping[str, Any]]) -> irm.IR:
    """A copy of *ir* whose trainable nodes have some parameters replaced: ``{node: {param: value}}``."""
    nodes = []
    for node in ir.nodes:
        change = overrides.get(node.id)
        if change and isinstance(node, irm.Trainable):
            params = dict(node.params)
            params["params"] = {**(params.get("params") or {}), **change}
            node = dataclasses.replace(node, params=params)
        nodes.append(node)
    return dataclasses.replace(ir, nodes=tuple(nodes))


def tuning_space(ir: irm.IR) -> dict[str, dict[str, Any]]:
    """The default search space of a program: every coordinate's regularization and the trees' shape.

    Keys are ``"<node>.<param>"``; GLMix gets ``l2`` and (for each random-effect part it has)
    ``per_member_l2`` / ``per_document_l2`` on a log scale; tree ensembles ``max_depth``,
    ``learning_rate`` and ``num_trees``.
    """
    space: dict[str, dict[str, Any]] = {}
    for node in ir.trainables():
        params = node.params.get("params") or {}
        if node.op == "GLMix":
            space[f"{node.id}.l2"] = {"type": "float", "low": 1e-2, "high": 1e3, "log": True}
            for part in ("per_member", "per_document"):
                if params.get(part):
                    space[f"{node.id}.{part}_l2"] = {"type": "float", "low": 1e-2, "high": 1e3, "log": True}
        elif node.op in ("LogisticScorer", "LinearScorer"):
            space[f"{node.id}.l2"] = {"type": "float", "low": 1e-3, "high": 1e3, "log": True}
        elif node.op == "TreeEnsemble":
            space[f"{node.id}.max_depth"] = {"type": "int", "low": 2, "high": 10}
            space[f"{node.id}.learning_rate"] = {"type": "float", "low": 0.02, "high": 0.5, "log": True}
            space[f"{node.id}.num_trees"] = {"type": "int", "low": 20, "high": 300, "log": True}
    if not space:
        raise TrainingError("the program has no tunable trainable node")
    return space


def _split_params(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        node, _, param = key.partition(".")
        out.setdefault(node, {})[param] = value
    return out


def train_program(
    workspace: Workspace,
    program: str | irm.IR,
    *,
    filename: str = "<quasar>",
    source_table: str | None = None,
    label: str | None = None,
    validation_fraction: float = 0.2,
    tune_trials: int = 0,
    frames: TrainingFrames | None = None,
    run_name: str | None = None,
    callback: Callback | None = None,
) -> TrainResult:
    """Train *program* (Quasar source, or a compiled IR) on its training data in *workspace*; tracked in
    MLflow.

    ``source_table`` overrides the program's ``training_data`` (a table under the lake);
    ``tune_trials > 0`` first searches :func:`tuning_space` with the Gaussian-process sampler (the
    study is stored in the workspace) and trains the best parameters.
    """
    from proml_lab.quasar import compile as compile_program
    from proml_lab.training.data import training_frame
    from proml_lab.training.tracking import Tracker

    started = time.perf_counter()
    emit = callback or (lambda event: None)
    if isinstance(program, irm.IR):
        ir, source = program, None
    else:
        ir, source = compile_program(program, catalog=workspace.features.catalog, filename=filename), program
    if frames is None:
        emit({"event": "data", "status": "joining features point-in-time"})
        frames = training_frame(workspace, ir, source=source_table, label=label,
                                validation_fraction=validation_fraction)
    tracker = Tracker(workspace)
    tuning = None
    if tune_trials > 0:
        tuning = _tune(workspace, tracker, ir, frames, tune_trials, emit)
        ir = with_params(ir, _split_params(tuning.best_params))
    with tracker.start_run(run_name or ir.name or "training", tags={"proml.kind": "train"}) as run:
        run.log_params({"data.source": frames.source, "data.split_at": str(frames.split_at)})
        if tuning is not None:
            run.log_params(tuning.best_params, prefix="tuned.")
        model = train(ir, frames.train, label=frames.label, validation=frames.validation, callback=emit,
                      run=run)
        model.source = source
    return TrainResult(model, len(frames.train), len(frames.validation), time.perf_counter() - started,
                       tuning)


def _tune(workspace: Workspace, tracker: Any, ir: irm.IR, frames: TrainingFrames, n: int,
          emit: Callback) -> TuneResult:
    from proml_lab.training.connect import _config_metrics
    from proml_lab.training.tune import tune

    metric = _config_metrics(ir)[0]
    lower = metric.partition("@")[0] in ("logloss", "rmse")
    space = tuning_space(ir)

    def objective(params: dict[str, Any]) -> float:
        trial_ir = with_params(ir, _split_params(params))
        with tracker.start_run(f"{ir.name or 'training'} trial", tags={"proml.kind": "tuning-trial"}) as run:
            run.log_params(params)
            model = train(trial_ir, frames.train, label=frames.label, validation=frames.validation)
            run.log_metrics(model.metrics)
        return float(model.metrics[metric])

    def report(number: int, params: dict[str, Any], value: float | None, best: float | None) -> None:
        emit({"event": "trial", "trial": number, "value": value, "best": best})

    return tune(objective, space, n_trials=n, direction="minimize" if lower else "maximize", sampler="gp",
                study_name=f"{ir.name or 'program'}:{metric}", storage=workspace.studies_uri,
                callback=report)
