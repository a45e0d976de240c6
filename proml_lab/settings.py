"""Settings, read from ``PROML_*`` environment variables (and a ``.env`` file, if present).

Every setting has an embedded default that works on one machine with zero set-up; the scale-out value
(a Spark cluster, Redis, an MLflow server) is one environment variable away. See DESIGN.md §3.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The project's checkout keeps shared data next to it (../shared/data); an installed package falls
# back to the current directory's sibling.
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _default_movielens_dir() -> Path:
    for base in (Path.cwd(), _PACKAGE_ROOT):
        candidate = (base / ".." / "shared" / "data" / "ml-100k").resolve()
        if candidate.is_dir():
            return candidate
    return (Path.cwd() / ".." / "shared" / "data" / "ml-100k").resolve()


class Settings(BaseSettings):
    """Where ProML Lab keeps its state and which engines it talks to.

    Examples
    --------
    >>> import os
    >>> os.environ["PROML_SPARK_MASTER"] = "local[2]"
    >>> Settings().spark_master
    'local[2]'
    >>> del os.environ["PROML_SPARK_MASTER"]
    """

    model_config = SettingsConfigDict(
        env_prefix="PROML_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(default=Path(".proml"), description="Workspace root directory.")
    spark_master: str = Field(default="local[*]", description="Spark master URL.")
    spark_driver_memory: str = Field(default="4g", description="spark.driver.memory (local mode).")
    spark_shuffle_partitions: int = Field(
        default=8, ge=1, description="spark.sql.shuffle.partitions; small suits a 2-core machine."
    )
    spark_ui: bool = Field(default=False, description="Start the Spark web UI.")
    spark_log_level: str = Field(default="ERROR", description="Spark log level.")
    online_store: str | None = Field(
        default=None, description="Online store URL; default sqlite:///<home>/online.db."
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default sqlite:///<home>/mlflow.db."
    )
    mlflow_registry_uri: str | None = Field(
        default=None, description="MLflow model registry URI; default: the tracking URI."
    )
    movielens_dir: Path = Field(
        default_factory=_default_movielens_dir, description="Directory holding MovieLens-100K."
    )

    @field_validator("spark_log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        levels = ("ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF", "TRACE")
        if value.upper() not in levels:
            raise ValueError(f"must be one of {', '.join(levels)}; got {value!r}")
        return value.upper()


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; call ``get_settings.cache_clear()`` after changing env)."""
    return Settings()
