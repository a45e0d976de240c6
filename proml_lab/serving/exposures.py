"""Exposure logging: what the service showed, to whom, from which model version, batched off the request path.

Each row names the alias and version that served it and, when an A/B experiment routed the request, the
``experiment`` and ``arm`` (null otherwise). A request only appends its rows to an in-memory queue
(``put_nowait``); a background thread writes them as Parquet files under ``<workspace>/logs/exposures/model=<name>/date=<YYYY-MM-DD>/`` every ``flush_s``
seconds or ``batch_rows`` rows, whichever comes first. Each file is written to a temporary name and renamed,
so a reader (A/B analysis, health monitoring) never sees half a file. When the queue is full the rows are
dropped and counted rather than blocking a request.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ExposureBatch", "ExposureLog", "exposure_dir", "read_exposures"]


@dataclass
class ExposureBatch:
    """The items one request showed (columnar): one row per shown document."""

    request_id: str
    model: str
    alias: str
    version: str
    member_id: Any
    document_ids: np.ndarray
    positions: np.ndarray
    scores: np.ndarray
    ts: dt.datetime
    experiment: str | None = None  # the A/B experiment and arm that routed the request (None: none did)
    arm: str | None = None


def exposure_dir(workspace: Any) -> Path:
    """Where a workspace's exposure logs live (a Hive-partitioned Parquet data set)."""
    return Path(workspace.root) / "logs" / "exposures"


class ExposureLog:
    """A non-blocking, batched exposure writer (one per service process)."""

    def __init__(self, root: Path, *, flush_s: float = 1.0, batch_rows: int = 20_000,
                 max_pending: int = 10_000, on_write: Callable[[int], None] | None = None,
                 on_drop: Callable[[int], None] | None = None) -> None:
        self.root = Path(root)
        self.flush_s = flush_s
        self.batch_rows = batch_rows
        self._queue: queue.Queue[ExposureBatch | None] = queue.Queue(maxsize=max_pending)
        self._on_write = on_write or (lambda n: None)
        self._on_drop = on_drop or (lambda n: None)
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.written = 0
        self.dropped = 0
        self.errors = 0

    # ---- request side -------------------------------------------------------------------------------

    def log(self, batch: ExposureBatch) -> None:
        """Queue one request's exposures; never blocks (a full queue drops them and counts it)."""
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self.dropped += len(batch.document_ids)
            self._on_drop(len(batch.document_ids))

    # ---- writer side --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="proml-exposures", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the writer thread."""
        if self._thread is None:
            return
        self._stopped.set()
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        pending: list[ExposureBatch] = []
        rows = 0
        deadline = _now() + self.flush_s
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - _now()))
            except queue.Empty:
                item = ...
            if item is None:
                self._flush(pending)
                return
            if item is not ...:
                pending.append(item)
                rows += len(item.document_ids)
            if rows >= self.batch_rows or _now() >= deadline:
                self._flush(pending)
                pending, rows = [], 0
                deadline = _now() + self.flush_s

    def _flush(self, pending: list[ExposureBatch]) -> None:
        if not pending:
            return
        try:
            for (model, day), batches in _group(pending).items():
                n = _write(self.root / f"model={model}" / f"date={day}", batches)
                self.written += n
                self._on_write(n)
        except Exception:  # noqa: BLE001 - the writer thread must survive a full disk; count and go on
            self.errors += 1


def _now() -> float:
    import time

    return time.monotonic()


def _group(pending: list[ExposureBatch]) -> dict[tuple[str, str], list[ExposureBatch]]:
    groups: dict[tuple[str, str], list[ExposureBatch]] = {}
    for b in pending:
        groups.setdefault((b.model, b.ts.date().isoformat()), []).append(b)
    return groups


def _write(directory: Path, batches: list[ExposureBatch]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    counts = np.array([len(b.document_ids) for b in batches])
    total = int(counts.sum())
    if total == 0:
        return 0

    def repeat(values: list[Any]) -> np.ndarray:
        return np.repeat(np.asarray(values, dtype=object), counts)

    member = repeat([b.member_id for b in batches])
    document = np.concatenate([np.asarray(b.document_ids) for b in batches])
    table = pa.table({
        "ts": pa.array(np.repeat(np.array([b.ts.replace(tzinfo=None) for b in batches], dtype="datetime64[us]"),
                                 counts), pa.timestamp("us", tz="UTC")),
        "request_id": pa.array(repeat([b.request_id for b in batches]), pa.string()),
        "alias": pa.array(repeat([b.alias for b in batches]), pa.string()),
        "version": pa.array(repeat([b.version for b in batches]), pa.string()),
        "member_id": _id_array(member),
        "document_id": _id_array(document),
        "position": pa.array(np.concatenate([b.positions for b in batches]).astype(np.int32)),
        "score": pa.array(np.concatenate([b.scores for b in batches]).astype(np.float64)),
        "experiment": pa.array(repeat([b.experiment for b in batches]), pa.string()),
        "arm": pa.array(repeat([b.arm for b in batches]), pa.string()),
    })
    directory.mkdir(parents=True, exist_ok=True)
    name = f"part-{dt.datetime.now(dt.timezone.utc):%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = directory / f".{name}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, directory / name)
    return total


def _id_array(values: np.ndarray) -> Any:
    import pyarrow as pa

    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return pa.array(arr.astype(np.int64))
    try:
        return pa.array(arr.astype(np.int64))
    except (TypeError, ValueError):
        return pa.array(arr.astype(str))


def read_exposures(workspace: Any, model: str | None = None) -> Any:
    """The exposure log as one Arrow table (optionally of one model); empty when nothing was logged."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    root = exposure_dir(workspace)
    if model is not None:
        root = root / f"model={model}"
    if not root.exists():
        return pa.table({})
    dataset = ds.dataset(root, format="parquet", partitioning="hive", exclude_invalid_files=True)
    # files written before a column existed lack it: read every file with the union of their schemas
    schemas = [fragment.physical_schema for fragment in dataset.get_fragments()]
    if not schemas:
        return pa.table({})
    unified = pa.unify_schemas([*schemas, dataset.schema], promote_options="permissive")
    return ds.dataset(root, format="parquet", partitioning="hive", schema=unified).to_table()
