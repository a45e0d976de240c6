"""The process's one IPython test shell, shared by every test module that runs magics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def ipython_shell() -> Any:
    """IPython's test application starts once per process (later ``start_ipython()`` calls return None):
    the first caller starts it, every later one gets the same shell."""
    from IPython.testing.globalipapp import get_ipython, start_ipython

    return start_ipython() or get_ipython()


@contextmanager
def magic_shell(workspace: Any, **namespace: Any) -> Iterator[Any]:
    """The shell with the ProML magics loaded on *workspace* (widgets off, rich displays as in a kernel) and
    *namespace* bound; unloaded again afterwards so the next test module loads them afresh."""
    from proml_lab.lab import unload_ipython_extension

    shell = ipython_shell()
    formats = shell.display_formatter.active_types
    shell.display_formatter.active_types = list(shell.display_formatter.format_types)  # as in a kernel
    shell.run_line_magic("load_ext", "proml_lab")
    shell.run_line_magic("config", f'ProMLMagics.workspace = "{workspace.root}"')
    shell.run_line_magic("config", 'ProMLMagics.widgets = "off"')
    shell.user_ns.update(namespace)
    try:
        yield shell
    finally:
        unload_ipython_extension(shell)
        shell.extension_manager.loaded.discard("proml_lab")
        shell.display_formatter.active_types = formats


def run_cell(shell: Any, cell: str) -> tuple[Any, Any]:
    """Run a cell; return its result and everything it printed and displayed."""
    from IPython.utils.capture import capture_output

    with capture_output() as out:
        result = shell.run_cell(cell)
    return result, out
