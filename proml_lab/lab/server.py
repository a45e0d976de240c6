"""The ProML Jupyter server extension: REST handlers for the JupyterLab panels.

Enabled by ``jupyter-config/jupyter_server_config.d/proml_lab.json`` (installed into
``etc/jupyter/jupyter_server_config.d``), or by hand with
``--ServerApp.jpserver_extensions='{"proml_lab.lab.server": True}'``. The workspace is
``ProMLServerExtension.workspace`` when set (``--ProMLServerExtension.workspace=/path``), else ``PROML_HOME``;
it is opened on the first request, so the server starts even before ``proml init``.
"""

from __future__ import annotations

import threading
from typing import Any

from traitlets import Unicode
from traitlets.config import Configurable

__all__ = ["ProMLServerExtension"]


class ProMLServerExtension(Configurable):
    """Settings of the ProML server extension."""

    workspace = Unicode(
        "",
        help="Path of the ProML Lab workspace the handlers serve; empty means PROML_HOME (or the default).",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._opened: Any = None
        self._lock = threading.Lock()

    def open_workspace(self) -> Any:
        """The workspace, opened once (a missing one raises :class:`WorkspaceError` on each request)."""
        with self._lock:
            if self._opened is None:
                from proml_lab.workspace import Workspace

                self._opened = Workspace.open(self.workspace or None)
            return self._opened


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "proml_lab.lab.server"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the ``/proml/...`` handlers on the running server."""
    from proml_lab.lab.handlers import setup_handlers

    ext = ProMLServerExtension(parent=server_app)
    routes = setup_handlers(server_app.web_app, ext.open_workspace)
    server_app.log.info("ProML Lab server extension: %d routes under %s", len(routes), routes[0].rsplit("/", 1)[0])
