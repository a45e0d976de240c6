"""Two-tower title embeddings (Keras 3), learned from who applies to which job in a world.

The member tower reads the member's primary title words and skills; the job tower reads the job
title's words; both share one token vocabulary and embedding table, mean-pool the tokens, pass them
through dense layers and L2-normalize. Training pulls a member towards the jobs they applied to and away
from sampled other jobs (binary cross-entropy on a scaled cosine). Because members of a title family
apply to jobs of that family, titles of one family ("chef", "sous chef", "cook") end up close together and
far from other families ("recruiter", "legal counsel").

Model code uses ``keras.ops`` only, so the same model trains on TensorFlow (CPU, here) and on JAX
(``KERAS_BACKEND=jax``, e.g. on a GPU machine). Keras is imported inside the functions that need it.

Examples
--------
>>> emb = train_title_embeddings(world, config=TwoTowerConfig(epochs=5))          # doctest: +SKIP
>>> emb.title_vectors(["chef", "sous chef", "recruiter"]).shape                    # doctest: +SKIP
(3, 32)
>>> export_embedding_features(emb, world, workspace.features, run_id="r1")         # doctest: +SKIP
['member_primaryTitleEmbedding_v1', 'job_titleEmbedding_v1']
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from proml_lab.errors import MissingDependencyError, TrainingError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

EpochCallback = Callable[[int, dict[str, float]], None]
MEMBER_FEATURE = "member_primaryTitleEmbedding_v1"
JOB_FEATURE = "job_titleEmbedding_v1"
_PAD, _UNK = 0, 1
_WORD = re.compile(r"[a-z0-9]+")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_FORMAT = 1


@dataclass(frozen=True)
class TwoTowerConfig:
    """Hyper-parameters of the two-tower title model (checked when training starts).

    Examples
    --------
    >>> TwoTowerConfig(epochs=3).embedding_dim
    32
    """

    embedding_dim: int = 32
    token_dim: int = 32
    hidden: tuple[int, ...] = (64,)
    epochs: int = 15
    batch_size: int = 256
    learning_rate: float = 0.01
    negatives: int = 4
    positive: Literal["applied", "clicked"] = "applied"
    max_member_tokens: int = 16
    max_title_tokens: int = 8
    seed: int = 0


# Declared constraints, checked once in train_title_embeddings: name -> (test, what it must be).
_CONSTRAINTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "embedding_dim": (lambda v: isinstance(v, int) and v >= 2, "an int in [2, inf)"),
    "token_dim": (lambda v: isinstance(v, int) and v >= 1, "an int in [1, inf)"),
    "hidden": (lambda v: all(isinstance(h, int) and h >= 1 for h in v), "a tuple of positive ints"),
    "epochs": (lambda v: isinstance(v, int) and v >= 1, "an int in [1, inf)"),
    "batch_size": (lambda v: isinstance(v, int) and v >= 1, "an int in [1, inf)"),
    "learning_rate": (lambda v: isinstance(v, (int, float)) and v > 0, "a float in (0, inf)"),
    "negatives": (lambda v: isinstance(v, int) and v >= 1, "an int in [1, inf)"),
    "positive": (lambda v: v in ("applied", "clicked"), "one of 'applied', 'clicked'"),
    "max_member_tokens": (lambda v: isinstance(v, int) and v >= 1, "an int in [1, inf)"),
    "max_title_tokens": (lambda v: isinstance(v, int) and v >= 1, "an int in [1, inf)"),
    "seed": (lambda v: isinstance(v, int), "an int"),
}


def _validate(config: TwoTowerConfig) -> None:
    for name, (ok, what) in _CONSTRAINTS.items():
        value = getattr(config, name)
        if not ok(value):
            raise TrainingError(
                f"The {name!r} parameter of TwoTowerConfig must be {what}. Got {value!r} instead.")


def title_words(text: str) -> list[str]:
    """Lower-case word tokens of a title: ``"Sous Chef"`` → ``["sous", "chef"]``."""
    return _WORD.findall(str(text).lower())


def _member_tokens(title: str, skills: Any) -> list[str]:
    # a skill is one token ("skill:french cuisine"): its words mean something else alone ("french")
    return [*title_words(title), *(f"skill:{s}" for s in (() if skills is None else skills))]


def _encode(docs: Sequence[Sequence[str]], index: dict[str, int], length: int) -> np.ndarray:
    """Token lists → a padded (n, length) int32 matrix (0 = padding, 1 = unknown token)."""
    out = np.zeros((len(docs), length), dtype=np.int32)
    for i, doc in enumerate(docs):
        ids = [index.get(t, _UNK) for t in doc[:length]]
        out[i, : len(ids)] = ids
    return out


def _keras() -> Any:
    try:
        import keras
    except ImportError:
        raise MissingDependencyError("keras", "deep") from None
    return keras


def _build(vocab_size: int, config: TwoTowerConfig) -> tuple[Any, Any, Any]:
    """The member tower, the job tower (sharing one token embedding) and the pair model for training."""
    keras = _keras()
    from keras import layers, ops

    class MaskedMean(layers.Layer):
        """Mean of the token embeddings of a row, padding excluded."""

        def call(self, embedded: Any, tokens: Any) -> Any:
            mask = ops.expand_dims(ops.cast(ops.not_equal(tokens, _PAD), embedded.dtype), -1)
            return ops.sum(embedded * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)

    class L2Normalize(layers.Layer):
        def call(self, x: Any) -> Any:
            return ops.normalize(x, axis=-1, order=2)

    class CosineLogit(layers.Layer):
        """``scale * cos(member, job) + bias``: a cosine in [-1, 1] is too flat a logit on its own."""

        def build(self, input_shape: Any) -> None:
            self.scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(5.0), name="scale")
            self.bias = self.add_weight(shape=(), initializer="zeros", name="bias")

        def call(self, member: Any, job: Any) -> Any:
            return self.scale * ops.sum(member * job, axis=-1, keepdims=True) + self.bias

    embedding = layers.Embedding(vocab_size, config.token_dim, name="tokens")

    def tower(name: str, length: int) -> Any:
        tokens = keras.Input((length,), dtype="int32", name=f"{name}_tokens")
        x = MaskedMean(name=f"{name}_mean")(embedding(tokens), tokens)
        for i, width in enumerate(config.hidden):
            x = layers.Dense(width, activation="relu", name=f"{name}_dense{i}")(x)
        x = layers.Dense(config.embedding_dim, name=f"{name}_out")(x)
        return keras.Model(tokens, L2Normalize(name=f"{name}_l2")(x), name=f"{name}_tower")

    member_tower = tower("member", config.max_member_tokens)
    job_tower = tower("job", config.max_title_tokens)
    m_in = keras.Input((config.max_member_tokens,), dtype="int32", name="member")
    j_in = keras.Input((config.max_title_tokens,), dtype="int32", name="job")
    logit = CosineLogit(name="logit")(member_tower(m_in), job_tower(j_in))
    pair = keras.Model([m_in, j_in], logit, name="two_tower")
    return member_tower, job_tower, pair


def _apply(tower: Any, tokens: np.ndarray, batch: int = 8192) -> np.ndarray:
    from keras import ops

    parts = [ops.convert_to_numpy(tower(tokens[i : i + batch], training=False))
             for i in range(0, len(tokens), batch)]
    dim = tower.output_shape[-1]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, dim), np.float32)


@dataclass
class TitleEmbeddings:
    """Trained title embeddings: vectors of every member and job of the world, and the job tower.

    ``title_vectors`` applies the job tower to any title text; ``member_vectors`` / ``job_vectors``
    look up the vectors computed at the end of training. ``history`` is the training loss per epoch.

    Examples
    --------
    >>> v = emb.title_vectors(["chef", "sous chef"]); float(v[0] @ v[1]) > 0.5     # doctest: +SKIP
    True
    >>> emb.save("title-emb"); TitleEmbeddings.load("title-emb").history == emb.history   # doctest: +SKIP
    True
    """

    config: TwoTowerConfig
    vocabulary: list[str] = field(repr=False)
    job_tower_weights: list[np.ndarray] = field(repr=False)
    member_ids: np.ndarray = field(repr=False)
    member_vectors_: np.ndarray = field(repr=False)
    job_ids: np.ndarray = field(repr=False)
    job_vectors_: np.ndarray = field(repr=False)
    title_families: dict[str, str] = field(repr=False)
    history: list[float]
    rows_per_second: float = 0.0
    _tower: Any = field(default=None, repr=False, compare=False)

    @property
    def dimension(self) -> int:
        return self.config.embedding_dim

    def title_vectors(self, titles: Sequence[str]) -> np.ndarray:
        """Job-tower vectors (unit length, float32, shape ``(len(titles), dimension)``) of title texts."""
        if self._tower is None:
            _, self._tower, _ = _build(len(self.vocabulary), self.config)
            self._tower.set_weights(self.job_tower_weights)
        index = {t: i for i, t in enumerate(self.vocabulary)}
        tokens = _encode([title_words(t) for t in titles], index, self.config.max_title_tokens)
        return _apply(self._tower, tokens)

    def member_vectors(self, member_ids: Any) -> np.ndarray:
        """Vectors of members (by id, in the order given)."""
        return _lookup(self.member_ids, self.member_vectors_, member_ids, "member")

    def job_vectors(self, job_ids: Any) -> np.ndarray:
        """Vectors of jobs (by id, in the order given)."""
        return _lookup(self.job_ids, self.job_vectors_, job_ids, "job")

    def save(self, path: str | Path) -> Path:
        """Write directory ``path``: ``model.json`` (config, vocabulary, history) and two ``.npz`` files."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"format": _FORMAT, "config": dataclasses.asdict(self.config), "vocabulary": self.vocabulary,
                "title_families": self.title_families, "history": self.history,
                "rows_per_second": self.rows_per_second}
        (out / "model.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        np.savez(out / "vectors.npz", member_ids=self.member_ids, member_vectors=self.member_vectors_,
                 job_ids=self.job_ids, job_vectors=self.job_vectors_)
        np.savez(out / "job_tower.npz", *self.job_tower_weights)
        return out

    @classmethod
    def load(cls, path: str | Path) -> TitleEmbeddings:
        """Read what :meth:`save` wrote (no Keras needed until ``title_vectors`` is called)."""
        src = Path(path)
        if not (src / "model.json").exists():
            raise TrainingError(f"No saved title embeddings at {src} (model.json is missing).")
        meta = json.loads((src / "model.json").read_text(encoding="utf-8"))
        cfg = dict(meta["config"], hidden=tuple(meta["config"]["hidden"]))
        with np.load(src / "vectors.npz") as v, np.load(src / "job_tower.npz") as w:
            weights = [w[f"arr_{i}"] for i in range(len(w.files))]
            return cls(TwoTowerConfig(**cfg), meta["vocabulary"], weights, v["member_ids"],
                       v["member_vectors"], v["job_ids"], v["job_vectors"], meta["title_families"],
                       meta["history"], meta.get("rows_per_second", 0.0))


def _lookup(ids: np.ndarray, vectors: np.ndarray, wanted: Any, what: str) -> np.ndarray:
    keys = np.asarray(wanted, dtype=np.int64).reshape(-1)
    pos = np.clip(np.searchsorted(ids, keys), 0, max(len(ids) - 1, 0))
    missing = keys[(len(ids) == 0) | (ids[pos] != keys)] if len(keys) else keys
    if len(missing):
        raise TrainingError(f"Unknown {what} id(s) {missing[:5].tolist()}: the embeddings were trained on "
                            f"another world or these {what}s are newer; retrain to cover them.")
    return vectors[pos]


def _world_tables(world: Any, positive: str) -> tuple[Any, Any, np.ndarray]:
    members = world.read("members", columns=["member_id", "primary_title", "title_family", "skills"])
    jobs = world.read("jobs", columns=["job_id", "title", "title_family"])
    impressions = world.read("impressions", columns=["member_id", "job_id", positive])
    pairs = impressions.loc[impressions[positive].astype(bool), ["member_id", "job_id"]].to_numpy(np.int64)
    if len(pairs) == 0:
        raise TrainingError(f"The world has no impressions with {positive}=true to learn from; "
                            "generate a larger world or use positive='clicked'.")
    return members.sort_values("member_id"), jobs.sort_values("job_id"), pairs


def train_title_embeddings(
    world: Any, *, config: TwoTowerConfig | None = None, callback: EpochCallback | None = None
) -> TitleEmbeddings:
    """Train the two-tower model on a world's (member, applied job) pairs vs sampled negatives.

    Parameters
    ----------
    world
        A :class:`~proml_lab.worlds.World` (anything with ``read(table, columns=...)`` over the
        ``members``, ``jobs`` and ``impressions`` tables).
    config
        Hyper-parameters; default :class:`TwoTowerConfig`.
    callback
        Called as ``callback(epoch, {"loss": ..., "rows_per_second": ...})`` after every epoch.

    Returns
    -------
    TitleEmbeddings

    Examples
    --------
    >>> emb = train_title_embeddings(world, config=TwoTowerConfig(epochs=3))     # doctest: +SKIP
    >>> emb.history[-1] < emb.history[0]                                          # doctest: +SKIP
    True
    """
    cfg = config or TwoTowerConfig()
    _validate(cfg)
    members, jobs, pairs = _world_tables(world, cfg.positive)
    keras = _keras()
    keras.utils.set_random_seed(cfg.seed)

    member_docs = [_member_tokens(t, s)
                   for t, s in zip(members["primary_title"], members["skills"], strict=True)]
    job_docs = [title_words(t) for t in jobs["title"]]
    vocabulary = ["[pad]", "[unk]", *sorted({tok for doc in (*member_docs, *job_docs) for tok in doc})]
    index = {t: i for i, t in enumerate(vocabulary)}
    member_tokens = _encode(member_docs, index, cfg.max_member_tokens)
    job_tokens = _encode(job_docs, index, cfg.max_title_tokens)
    member_ids = members["member_id"].to_numpy(np.int64)
    job_ids = jobs["job_id"].to_numpy(np.int64)
    pos_member = np.searchsorted(member_ids, pairs[:, 0])
    pos_job = np.searchsorted(job_ids, pairs[:, 1])

    member_tower, job_tower, pair = _build(len(vocabulary), cfg)
    pair.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                 loss=keras.losses.BinaryCrossentropy(from_logits=True))
    rng = np.random.default_rng(cfg.seed)
    k, history, rows, seconds = cfg.negatives, [], 0, 0.0
    for epoch in range(cfg.epochs):
        # fresh negatives every epoch: k random jobs per positive pair
        m_rows = np.repeat(pos_member, 1 + k)
        j_rows = np.column_stack([pos_job, rng.integers(0, len(job_ids), (len(pos_job), k))]).reshape(-1)
        labels = np.tile(np.r_[1.0, np.zeros(k)], len(pos_job)).astype(np.float32)
        order = rng.permutation(len(labels))
        start = time.perf_counter()
        fitted = pair.fit([member_tokens[m_rows[order]], job_tokens[j_rows[order]]], labels[order],
                          batch_size=cfg.batch_size, epochs=1, shuffle=False, verbose=0)
        seconds += time.perf_counter() - start
        rows += len(labels)
        history.append(float(fitted.history["loss"][-1]))
        if callback:
            callback(epoch, {"loss": history[-1], "rows_per_second": rows / seconds})

    families = dict(zip(jobs["title"], jobs["title_family"], strict=True))
    families.update(zip(members["primary_title"], members["title_family"], strict=True))
    return TitleEmbeddings(
        config=cfg, vocabulary=vocabulary, job_tower_weights=[np.asarray(w) for w in job_tower.get_weights()],
        member_ids=member_ids, member_vectors_=_apply(member_tower, member_tokens),
        job_ids=job_ids, job_vectors_=_apply(job_tower, job_tokens),
        title_families=dict(sorted(families.items())), history=history,
        rows_per_second=rows / max(seconds, 1e-9),
        _tower=job_tower,
    )


def _vector_table(key: str, ids: np.ndarray, vectors: np.ndarray, dates: Any) -> Any:
    import pyarrow as pa

    days = np.asarray(dates, dtype="datetime64[D]")
    return pa.table({
        key: pa.array(ids, pa.int64()),
        "event_ts": pa.array(days.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
        "embedding": pa.FixedSizeListArray.from_arrays(
            pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1]),
    })


def export_embedding_features(
    embeddings: TitleEmbeddings, world: Any, store: Any, *, run_id: str, owner: str = "deep-learning-team"
) -> list[str]:
    """Publish the member and job vectors as Feature Marketplace features of a training run.

    Writes ``<lake>/embeddings/title_two_tower/<run_id>/{member,job}/part-00000.parquet`` (id,
    ``event_ts``, ``embedding``) and applies sources, anchors and the vector features
    ``member_primaryTitleEmbedding_v1`` (entity ``member``) and ``job_titleEmbedding_v1`` (entity
    ``job``) to the catalog. A member's value is known from the day they joined and a job's from the
    day it was posted (the embedding is a function of profile and posting text), so point-in-time joins
    over the world's labels find them. The run is recorded as the tag ``run:<run_id>``, in the
    descriptions and in the source path, so re-exporting another run makes a new catalog version.

    Parameters
    ----------
    embeddings
        The trained embeddings.
    world
        The world they were trained on (for the members' and jobs' event dates).
    store
        The workspace's :class:`~proml_lab.features.store.FeatureStore` (``workspace.features``).
    run_id
        The training run's id (letters, digits, ``.``, ``_``, ``-``).
    owner
        Owner recorded on the anchors.

    Returns
    -------
    list[str]
        The two feature names.

    Examples
    --------
    >>> export_embedding_features(emb, world, ws.features, run_id="2026-11-22-a")   # doctest: +SKIP
    ['member_primaryTitleEmbedding_v1', 'job_titleEmbedding_v1']
    """
    import pyarrow.parquet as pq

    from proml_lab.features.spec import Anchor, Entity, Feature, Source

    if not _RUN_ID.match(run_id or ""):
        raise TrainingError(
            f"run_id must be letters, digits, '.', '_' or '-' (it names a folder); got {run_id!r}.")
    members = world.read("members", columns=["member_id", "joined_date"]).set_index("member_id")
    jobs = world.read("jobs", columns=["job_id", "posted_date"]).set_index("job_id")
    folder = f"embeddings/title_two_tower/{run_id}"
    specs = [
        ("member", "member_id", MEMBER_FEATURE, embeddings.member_ids, embeddings.member_vectors_,
         members["joined_date"], "the member's primary title and skills (member tower)"),
        ("job", "job_id", JOB_FEATURE, embeddings.job_ids, embeddings.job_vectors_,
         jobs["posted_date"], "the job's title (job tower; the same space as any title text)"),
    ]
    definitions: list[Any] = []
    known = set(store.catalog.entity_names())
    for entity, key, feature, ids, vectors, dates, what in specs:
        missing = np.setdiff1d(ids, dates.index.to_numpy())
        if len(missing):
            raise TrainingError(f"{len(missing)} {entity} id(s) of the embeddings are not in this world "
                                f"(e.g. {missing[:3].tolist()}); export with the world they were trained on.")
        path = store.workspace.lake / folder / entity / "part-00000.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_vector_table(key, ids, vectors, dates.loc[ids].to_numpy()), path)
        if entity not in known:
            definitions.append(Entity(name=entity, join_key=key))
        run_note = f"Two-tower title model, training run {run_id}."
        definitions += [
            Source(name=f"title_embeddings_{entity}", path=f"{folder}/{entity}", timestamp_column="event_ts",
                   description=f"{entity.capitalize()} title embeddings. {run_note}"),
            Anchor(name=f"{entity}_title_embedding", entity=entity, source=f"title_embeddings_{entity}",
                   owner=owner, tags=("embedding", "two-tower", "deep", f"run:{run_id}"), partition="month",
                   description=run_note,
                   features=(Feature(
                       name=feature, expr="embedding", type="vector", dimension=embeddings.dimension,
                       description=f"Title embedding ({embeddings.dimension}-d, unit length) of {what}. "
                                   f"{run_note}"),)),
        ]
    store.apply(definitions)
    return [MEMBER_FEATURE, JOB_FEATURE]


def plot_title_map(embeddings: TitleEmbeddings, titles: Sequence[str] | None = None,
                   ax: Axes | None = None) -> Figure:
    """Titles on the plane of the first two principal components of their vectors, colored by family.

    Parameters
    ----------
    embeddings
        Trained embeddings.
    titles
        Title texts to place (any text; default: every title of the world they were trained on).
    ax
        Axes to draw on; default: a new figure (made without pyplot, so nothing global changes).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_title_map(emb, ["chef", "sous chef", "cook", "recruiter"])       # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    names = list(titles) if titles is not None else list(embeddings.title_families)
    if not names:
        raise TrainingError("plot_title_map needs at least one title.")
    vectors = embeddings.title_vectors(names).astype(np.float64)
    centered = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    xy = centered @ vt[:2].T if len(vt) >= 2 else np.column_stack([centered @ vt[:1].T, np.zeros(len(names))])
    if ax is None:
        ax = Figure(figsize=(9, 7), layout="constrained").add_subplot()
    families = [embeddings.title_families.get(t, "other") for t in names]
    palette = [f"C{i}" for i in range(10)] + ["#444444", "#a65628", "#f781bf", "#999999"]
    for i, family in enumerate(dict.fromkeys(families)):
        rows = [j for j, f in enumerate(families) if f == family]
        ax.scatter(xy[rows, 0], xy[rows, 1], s=30, color=palette[i % len(palette)], label=family)
    for (x, y), name in zip(xy, names, strict=True):
        ax.annotate(name, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=8)
    ax.set(xlabel="component 1", ylabel="component 2", title="Job titles in the two-tower embedding space")
    ax.legend(fontsize=8, loc="best")
    return ax.figure  # type: ignore[return-value]  # a SubFigure only when the caller gave one


__all__ = [
    "JOB_FEATURE", "MEMBER_FEATURE", "TitleEmbeddings", "TwoTowerConfig", "export_embedding_features",
    "plot_title_map", "title_words", "train_title_embeddings",
]
