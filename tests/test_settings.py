from pathlib import Path

import pytest
from pydantic import ValidationError

from proml_lab.settings import Settings, get_settings


def test_defaults_work_on_one_machine(monkeypatch):
    monkeypatch.delenv("PROML_HOME")
    s = Settings()
    assert s.home == Path(".proml")
    assert s.spark_master == "local[*]"
    assert s.online_store is None and s.mlflow_tracking_uri is None  # derived from the workspace


def test_environment_overrides_with_prefix(monkeypatch):
    monkeypatch.setenv("PROML_SPARK_MASTER", "spark://cluster:7077")
    monkeypatch.setenv("PROML_ONLINE_STORE", "redis://localhost:6379/0")
    monkeypatch.setenv("PROML_SPARK_SHUFFLE_PARTITIONS", "64")
    s = Settings()
    assert s.spark_master == "spark://cluster:7077"
    assert s.online_store == "redis://localhost:6379/0"
    assert s.spark_shuffle_partitions == 64


def test_bad_values_name_the_setting(monkeypatch):
    monkeypatch.setenv("PROML_SPARK_LOG_LEVEL", "LOUD")
    with pytest.raises(ValidationError, match="spark_log_level"):
        Settings()
    monkeypatch.setenv("PROML_SPARK_LOG_LEVEL", "warn")
    monkeypatch.setenv("PROML_SPARK_SHUFFLE_PARTITIONS", "0")
    with pytest.raises(ValidationError, match="spark_shuffle_partitions"):
        Settings()


def test_get_settings_is_cached_until_cleared(monkeypatch):
    first = get_settings()
    monkeypatch.setenv("PROML_SPARK_MASTER", "local[1]")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().spark_master == "local[1]"
