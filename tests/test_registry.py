import sys

import pytest

from proml_lab._registry import Registry


def test_register_get_and_normalized_names():
    reg = Registry[int]("proml_lab.test_registry_group", "Test", normalize=str.lower)
    reg.register("Alpha", 1)
    assert reg.get("ALPHA") == 1 and "alpha" in reg and reg.get("beta") is None
    assert list(reg) == ["alpha"]


def test_plugins_load_once_and_a_broken_one_only_warns(tmp_path, monkeypatch):
    site = tmp_path / "site"
    for name, target in (("good_plugin", "json:dumps"), ("bad_plugin", "no_such_module_abc:thing")):
        dist = site / f"{name}-0.1.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[proml_lab.test_plugins]\n{name.split('_')[0]} = {target}\n")
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    reg = Registry[object]("proml_lab.test_plugins", "Test")
    with pytest.warns(UserWarning, match="Test plugin 'bad' failed to load"):
        import json

        assert reg.get("good") is json.dumps
    assert reg.names() == ["good"]
