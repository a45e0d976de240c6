"""Batch scoring on Spark: offline scores, precomputed recommendations and offline evaluation.

Every function takes a *model*: anything with ``.ir`` and ``.state`` (a
:class:`~proml_lab.training.connect.TrainedModel` or a published bundle; both also name their
``member_id_column`` / ``document_id_column``) and runs it with
:class:`~proml_lab.quasar.engine.SparkEngine`, i.e. the local engine's operator code applied to Arrow
batches, so a batch score equals the score the model gives the same row in a notebook or in serving.

* :func:`score_batch` — one score per (member, document) row (pairwise: list operations do not apply);
* :func:`recommend_batch` — every member ranked against the documents, the program's own list operations
  (``ORDER`` / ``KEEP`` / ``FILTER`` / ``DIVERSIFY`` / ``TOP``) applied per member;
* :func:`evaluate_batch` — the program's metrics on labelled rows scored on Spark.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from proml_lab.errors import TrainingError
from proml_lab.quasar import ir as irm
from proml_lab.quasar.errors import QuasarError
from proml_lab.training.connect import PROBABILITY_OPS, evaluate_scores

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["evaluate_batch", "recommend_batch", "score_batch"]



def score_batch(model: Any, data: DataFrame, *, node: str | None = None,
                output_column: str = "score") -> DataFrame:
    """*data* with one extra column holding the model's score of each (member, document) row.

    Parameters
    ----------
    model : TrainedModel or bundle
        Anything with ``.ir`` and ``.state``.
    data : pyspark.sql.DataFrame
        One row per (member, document) pair with a column per input feature (member- and document-scope
        side by side, as a point-in-time join produces them) and, for per-entity coefficients, the
        model's member / document id columns.
    node : str, optional
        The value node to output; default: the score the program orders by.
    output_column : str, default "score"
        Name of the new column; it must not exist in *data*.

    Examples
    --------
    >>> scored = score_batch(model, spark.read.parquet("eval.parquet"))    # doctest: +SKIP
    >>> scored.select("member_id", "job_id", "score").show(3)              # doctest: +SKIP
    """
    engine = _engine(model)
    node = node or engine.score_node()
    if output_column in data.columns:
        raise QuasarError(f"the DataFrame already has a column {output_column!r}; pass another "
                          f"output_column=")
    if node in data.columns:  # the engine would replace that column: score under a private name
        scored = engine.score(data.withColumnRenamed(node, "__proml_input__"), nodes=[node],
                              **_id_columns(model, data.columns))
        return scored.withColumnRenamed(node, output_column).withColumnRenamed("__proml_input__", node)
    scored = engine.score(data, nodes=[node], **_id_columns(model, data.columns))
    return scored.withColumnRenamed(node, output_column)


def recommend_batch(model: Any, members: DataFrame, documents: DataFrame, *,
                    candidates: DataFrame | None = None, k: int | None = None,
                    member_id_column: str | None = None,
                    document_id_column: str | None = None) -> DataFrame:
    """Precomputed recommendations: ``(member_id, rank, document_id, score)``, rank 1 the best.

    Each member is one ranking query, run by the local engine inside ``groupBy(member).applyInPandas``
    (Arrow batches, no per-row Python), so the program's list operations apply per member exactly as
    in serving.

    Parameters
    ----------
    model : TrainedModel or bundle
        Anything with ``.ir`` and ``.state``.
    members : pyspark.sql.DataFrame
        One row per member: the member id column and the member-scope (and request-scope) features.
    documents : pyspark.sql.DataFrame
        One row per document: the document id column and the document-scope features.
    candidates : pyspark.sql.DataFrame, optional
        ``(member id, document id)`` pairs to rank; default: every member against every document (a
        cross join: mind its size). Pairs whose member or document has no row are dropped.
    k : int, optional
        Keep the top *k* per member (after the program's own ``TOP``); default: the whole ranked list.
    member_id_column, document_id_column : str, optional
        Default: the model's own (``model.member_id_column`` / ``model.document_id_column``).
        The output keeps these names.

    Examples
    --------
    >>> recs = recommend_batch(model, members_df, jobs_df, k=10)           # doctest: +SKIP
    >>> recs.write.parquet("recommendations.parquet")                      # doctest: +SKIP
    """
    from pyspark.sql import functions as F

    member_id = str(member_id_column or getattr(model, "member_id_column", "member_id"))
    document_id = str(document_id_column or getattr(model, "document_id_column", "document_id"))
    if k is not None and (not isinstance(k, int) or k < 1):
        raise QuasarError(f"The 'k' parameter of recommend_batch must be an int in [1, inf). Got {k!r} "
                          f"instead.")
    for frame, column, what in ((members, member_id, "members"), (documents, document_id, "documents")):
        if column not in frame.columns:
            raise QuasarError(f"the {what} DataFrame has no id column {column!r}")
    overlap = (set(members.columns) - {member_id}) & (set(documents.columns) - {document_id})
    if overlap:
        raise QuasarError(f"the members and documents DataFrames share column(s) "
                          f"{', '.join(sorted(overlap))}; rename them")
    pairs = _pairs(members, documents, candidates, member_id, document_id)
    ranked = _engine(model).rank(pairs, query_column=member_id, k=k, member_id_column=member_id,
                                 document_id_column=document_id)
    return ranked.select(member_id, (F.col("position") + 1).alias("rank"), document_id, "score")


def evaluate_batch(model: Any, data: DataFrame, *, label: str | None = None,
                   metrics: Sequence[str] | None = None) -> dict[str, float]:
    """The program's metrics on labelled rows, scored on Spark.

    Scores are computed on the cluster; only the ``(label, score, member id)`` columns are collected
    (Arrow) to compute the metrics with :mod:`proml_lab.training.metrics`, the same code as
    :meth:`TrainedModel.evaluate <proml_lab.training.connect.TrainedModel.evaluate>`, whose results
    this equals on the same rows.

    Parameters
    ----------
    label : str, optional
        The label column; default: the model's ``label`` or the program's ``TRAINING CONFIG``.
    metrics : sequence of str, optional
        ``auc``, ``logloss``, ``rmse``, ``ndcg@K``, ``precision@K``; default: the TRAINING CONFIG's
        (else ``auc`` and ``logloss``). Ranking metrics group rows by the member id column.

    Examples
    --------
    >>> evaluate_batch(model, spark.read.parquet("eval.parquet"), metrics=["auc", "ndcg@10"])  # doctest: +SKIP
    {'auc': 0.79, 'ndcg@10': 0.52}
    """
    config = model.ir.training_config or {}
    label = label or getattr(model, "label", None) or config.get("label")
    if not label or label not in data.columns:
        raise TrainingError(f"the data has no label column {label!r}" if label else
                            "no label: pass label=... or write TRAINING CONFIG {label: <column>}")
    names = [str(n) for n in (metrics or config.get("metrics") or ["auc", "logloss"])]
    member_id = getattr(model, "member_id_column", "member_id")
    keep = [label, "__proml_score__"] + ([member_id] if member_id in data.columns else [])
    pdf: Any = score_batch(model, data, output_column="__proml_score__").select(*keep).toPandas()
    y = pdf[label].to_numpy(np.float64)
    score = pdf["__proml_score__"].to_numpy(np.float64)
    group = pdf[member_id].to_numpy() if member_id in pdf.columns else None
    probability = getattr(model.ir.node(_engine(model).score_node()), "op", "") in PROBABILITY_OPS
    if group is None and any(n.partition("@")[0] in ("ndcg", "precision") for n in names):
        raise TrainingError(f"ranking metrics need the member id column {member_id!r} in the data")
    return evaluate_scores(y, score, names, probability=probability, group=group)


# ---- helpers ---------------------------------------------------------------------------------------------


def _engine(model: Any) -> Any:
    from proml_lab.quasar.engine import SparkEngine

    if not isinstance(getattr(model, "ir", None), irm.IR) or not hasattr(model, "state"):
        raise QuasarError(f"model must have a compiled .ir and a trained .state (a TrainedModel or a "
                          f"bundle); got {type(model).__name__}")
    return SparkEngine(model.ir, state=model.state)


def _id_columns(model: Any, columns: Sequence[str]) -> dict[str, str | None]:
    """The model's id columns that *columns* has (per-entity coefficients are looked up by them)."""
    have = set(columns)
    member = getattr(model, "member_id_column", "member_id")
    document = getattr(model, "document_id_column", "document_id")
    return {"member_id_column": member if member in have else None,
            "document_id_column": document if document in have else None}


def _pairs(members: DataFrame, documents: DataFrame, candidates: DataFrame | None, member_id: str,
           document_id: str) -> DataFrame:
    """One row per (member, document) to rank, member and document features side by side."""
    if candidates is None:
        return members.crossJoin(documents)
    missing = [c for c in (member_id, document_id) if c not in candidates.columns]
    if missing:
        raise QuasarError(f"the candidates DataFrame has no column(s) {', '.join(map(repr, missing))}")
    return (candidates.select(member_id, document_id).join(members, member_id)
            .join(documents, document_id))
