import pytest

from proml_lab.errors import ConfigurationError
from proml_lab.settings import Settings
from proml_lab.spark import _require_java, spark_conf

pytestmark = pytest.mark.spark


def test_conf_follows_settings():
    conf = spark_conf(Settings(spark_master="spark://head:7077", spark_driver_memory="8g", spark_shuffle_partitions=32))
    assert conf["spark.master"] == "spark://head:7077"
    assert conf["spark.driver.memory"] == "8g"
    assert conf["spark.sql.shuffle.partitions"] == "32"
    assert conf["spark.sql.execution.arrow.pyspark.enabled"] == "true"
    assert conf["spark.sql.session.timeZone"] == "UTC"


def test_session_is_shared_local_and_arrow_enabled(spark):
    from proml_lab.spark import get_spark

    assert get_spark() is spark
    assert spark.sparkContext.master == "local[2]"
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert spark.sparkContext.uiWebUrl is None  # no web UI unless asked for


def test_spark_reads_the_world_and_runs_arrow_batches(spark, tiny_world):
    impressions = spark.read.parquet(str(tiny_world.table_path("impressions")))
    assert impressions.count() == tiny_world.rows["impressions"]
    assert dict(impressions.dtypes)["date"] == "date"  # hive partition column

    def ctr_per_batch(batches):
        import pandas as pd

        for frame in batches:
            yield pd.DataFrame({"n": [len(frame)], "clicks": [int(frame["clicked"].sum())]})

    totals = impressions.select("clicked").mapInPandas(ctr_per_batch, "n long, clicks long").groupBy().sum().first()
    assert totals[0] == tiny_world.rows["impressions"]
    assert totals[1] == tiny_world.info["labels"]["clicks"]
    assert spark.createDataFrame(tiny_world.read("members").drop(columns=["skills"])).count() == 1_000


def test_missing_java_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigurationError, match="Spark needs Java.*apt-get install openjdk-17-jre-headless"):
        _require_java()
