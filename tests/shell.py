"""The process's one IPython test shell, shared by every test module that runs magics."""

from __future__ import annotations

from typing import Any


def ipython_shell() -> Any:
    """IPython's test application starts once per process (later ``start_ipython()`` calls return None):
    the first caller starts it, every later one gets the same shell."""
    from IPython.testing.globalipapp import get_ipython, start_ipython

    return start_ipython() or get_ipython()
