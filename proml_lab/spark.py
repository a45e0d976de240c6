"""One shared :class:`~pyspark.sql.SparkSession` for the process.

``local[*]`` by default, any master URL through ``PROML_SPARK_MASTER``. Arrow is on (every engine
exchanges columnar batches with Spark), logs are quiet, and memory suits a small machine
(2 cores / 24 GiB): the driver is the executor in local mode, so ``spark.driver.memory`` is the knob.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from proml_lab.errors import ConfigurationError
from proml_lab.settings import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_LOCK = threading.Lock()
_LOG4J = Path(__file__).with_name("log4j2.properties")


def spark_conf(settings: Settings, *, warehouse_dir: Path | None = None) -> dict[str, str]:
    """The Spark configuration ProML Lab uses, as a plain dict (inspectable, testable)."""
    conf = {
        "spark.master": settings.spark_master,
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.default.parallelism": str(settings.spark_shuffle_partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "20000",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.enabled": str(settings.spark_ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{_LOG4J}",
        # Offline machines: no network look-ups for the driver's host name.
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
    }
    if warehouse_dir is not None:
        conf["spark.sql.warehouse.dir"] = str(warehouse_dir)
    return conf


def get_spark(
    settings: Settings | None = None, *, warehouse_dir: Path | None = None, app_name: str = "proml-lab"
) -> SparkSession:
    """Return the process's Spark session, starting it on first use.

    Examples
    --------
    >>> spark = get_spark()                      # doctest: +SKIP
    >>> spark.range(3).count()                   # doctest: +SKIP
    3
    """
    settings = settings or get_settings()
    with _LOCK:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        _require_java()
        os.environ.setdefault("PYSPARK_PYTHON", _python())
        builder = SparkSession.builder.appName(app_name)
        for key, value in spark_conf(settings, warehouse_dir=warehouse_dir).items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel(settings.spark_log_level)
        return session


def stop_spark() -> None:
    """Stop the shared session, if one is running."""
    with _LOCK:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()


def _python() -> str:
    import sys

    return sys.executable


def _require_java() -> None:
    if os.environ.get("JAVA_HOME") or shutil.which("java"):
        return
    raise ConfigurationError(
        "Spark needs Java (17 or 21) and none was found on PATH or in JAVA_HOME. "
        "Install it (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`) or run `make demo`, "
        "which installs it.",
        setting="JAVA_HOME",
    )
