from __future__ import annotations

import pytest

from tests.deploy.world import trained_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory):
    """``(workspace, trained)``: see :func:`tests.deploy.world.trained_world`."""
    return trained_world(tmp_path_factory)
