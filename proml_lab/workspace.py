"""The workspace: one directory that holds everything a team's models need.

Layout (embedded defaults; each URL can point elsewhere through :mod:`proml_lab.settings`)::

    <root>/
      workspace.json   format version, id, creation time (written last, atomically)
      lake/            the offline lake: Parquet tables (worlds, feature tables, training data)
      catalog.db       the feature catalog (SQLite, WAL)
      online.db        the embedded online store (SQLite), unless PROML_ONLINE_STORE says otherwise
      mlflow.db        MLflow tracking + registry (SQLite), unless PROML_MLFLOW_TRACKING_URI says otherwise
      mlartifacts/     MLflow artifact root
      runs/            job state and logs of long-running work

Creating a workspace is idempotent and safe when several processes do it at once (a file lock guards
the first initialisation; the marker file is written last and atomically).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sqlite3
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from proml_lab._fs import write_json_atomic
from proml_lab.errors import WorkspaceError
from proml_lab.settings import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from proml_lab.features.store import FeatureStore

FORMAT_VERSION = 1
MARKER = "workspace.json"
_SUBDIRS = ("lake", "mlartifacts", "runs")


class Workspace:
    """A ProML Lab workspace rooted at a directory.

    Parameters
    ----------
    root
        Workspace directory. Default: ``settings.home`` (``PROML_HOME``, else ``./.proml``).
    settings
        Settings to use. Default: the process-wide settings.

    Examples
    --------
    >>> import tempfile
    >>> ws = Workspace.init(tempfile.mkdtemp() + "/ws")
    >>> ws.online_store_url.startswith("sqlite:///")
    True
    """

    def __init__(self, root: str | Path | None = None, *, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.root = Path(root if root is not None else self.settings.home).expanduser().resolve()
        self._info: dict[str, Any] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    @classmethod
    def init(cls, root: str | Path | None = None, *, settings: Settings | None = None) -> Workspace:
        """Create the workspace if it does not exist, then open it. Safe to call again, and concurrently."""
        ws = cls(root, settings=settings)
        try:
            ws.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(
                f"Cannot create the workspace at {ws.root}: {exc.strerror}. "
                "Set PROML_HOME to a writable directory.",
                path=str(ws.root),
            ) from exc
        with FileLock(str(ws.root / ".workspace.lock"), timeout=60):
            if not (ws.root / MARKER).exists():
                ws._create()
        return ws.open(ws.root, settings=ws.settings)

    @classmethod
    def open(cls, root: str | Path | None = None, *, settings: Settings | None = None) -> Workspace:
        """Open an existing workspace; raise :class:`WorkspaceError` if there is none or it is too new."""
        ws = cls(root, settings=settings)
        marker = ws.root / MARKER
        if not marker.exists():
            raise WorkspaceError(
                f"No ProML Lab workspace at {ws.root}. Create one with `proml init` "
                "(or Workspace.init()), or point PROML_HOME at an existing one.",
                path=str(ws.root),
            )
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise WorkspaceError(f"Cannot read {marker}: {exc}", path=str(ws.root)) from exc
        if int(info.get("format", 0)) > FORMAT_VERSION:
            raise WorkspaceError(
                f"The workspace at {ws.root} has format {info.get('format')}, newer than this "
                f"ProML Lab understands ({FORMAT_VERSION}). Upgrade proml-lab.",
                path=str(ws.root),
            )
        ws._info = info
        for sub in _SUBDIRS:  # a workspace copied without its empty folders is still valid
            (ws.root / sub).mkdir(exist_ok=True)
        return ws

    def _create(self) -> None:
        for sub in _SUBDIRS:
            (self.root / sub).mkdir(exist_ok=True)
        with self.connect_catalog():
            pass  # creates the file in WAL mode; the feature catalog owns its schema
        write_json_atomic(
            self.root / MARKER,
            {
                "format": FORMAT_VERSION,
                "id": uuid.uuid4().hex,
                "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            },
        )

    # -- where things live -------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """Stable identifier of this workspace (written once, at creation)."""
        return str(self._require_info()["id"])

    @property
    def created_at(self) -> str:
        return str(self._require_info()["created_at"])

    @property
    def lake(self) -> Path:
        """Root of the offline lake (Parquet)."""
        return self.root / "lake"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.db"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def online_store_url(self) -> str:
        return self.settings.online_store or f"sqlite:///{self.root / 'online.db'}"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.settings.mlflow_tracking_uri or f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def mlflow_registry_uri(self) -> str:
        return self.settings.mlflow_registry_uri or self.mlflow_tracking_uri

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def studies_uri(self) -> str:
        """Optuna storage for tuning studies (SQLite in the workspace)."""
        return f"sqlite:///{self.root / 'studies.db'}"

    def connect_catalog(self) -> sqlite3.Connection:
        """A connection to the catalog database (WAL mode, waits up to 30 s for a writer)."""
        con = sqlite3.connect(self.catalog_path, timeout=30.0)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    def spark(self) -> SparkSession:
        """The shared Spark session, with its warehouse inside the workspace."""
        from proml_lab.spark import get_spark

        return get_spark(self.settings, warehouse_dir=self.root / "spark-warehouse")

    @functools.cached_property
    def features(self) -> FeatureStore:
        """The Feature Marketplace of this workspace (catalog, offline tables, online store)."""
        # The marketplace sits a layer above the workspace; it is resolved on first use so that the
        # ground floor imports nothing from it at import time.
        from proml_lab.features.store import FeatureStore

        return FeatureStore(self)

    def describe(self) -> dict[str, str]:
        """Where everything lives, as strings (for ``proml init`` and notebooks)."""
        return {
            "root": str(self.root),
            "id": self.id,
            "lake": str(self.lake),
            "catalog": str(self.catalog_path),
            "online_store": self.online_store_url,
            "mlflow_tracking_uri": self.mlflow_tracking_uri,
            "mlflow_registry_uri": self.mlflow_registry_uri,
            "spark_master": self.settings.spark_master,
        }

    def _require_info(self) -> dict[str, Any]:
        if self._info is None:
            raise WorkspaceError(
                "This Workspace object was not opened; use Workspace.open() or Workspace.init().",
                path=str(self.root),
            )
        return self._info

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"
