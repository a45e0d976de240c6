"""ProML Lab in Jupyter: the IPython extension (magics), training jobs, widgets and the server extension.

Load the magics in a notebook with ``%load_ext proml_lab``. To load them in every kernel and IPython
session, add to an IPython profile config (``~/.ipython/profile_default/ipython_config.py``, which
kernels read too; create it with ``ipython profile create``)::

    c.InteractiveShellApp.extensions = ["proml_lab"]
    c.ProMLMagics.workspace = "/data/proml"      # optional; default: PROML_HOME
    c.ProMLMagics.spark_master = "local[4]"      # optional

Magics (``%magic?`` shows each one's options):

============================================  =====================================================
``%%quasar [NAME] [--check-online]``          compile the cell, show the DAG and features, bind NAME
``%features [QUERY] [--entity E] [--type T]`` search the Feature Marketplace
``%feature NAME``                             definition, lineage, statistics history
``%train NAME [--data T] [--label L] [--tune N] [--wait|--no-wait]``  a tracked training job
``%job ID [--kill]``                          re-attach to a job (progress, then its result)
``%jobs``                                     every job of the workspace
``%compare A B``                              Metric | Baseline | NewModel | Lift, and the lift plot
``%publish MODEL_OR_RUN [--name N] [--alias A]``  register a version in the MLflow Model Registry
``%deploy NAME [--version V] [--alias A] [--rollback]``  deploy a version (or roll an alias back)
``%rank NAME MEMBER_ID [-k K] [--explain]``   rank with the deployed model, in-process
``%experiment [NAME] [--ramp P|--start|--stop]``  A/B experiments: list, report (decision, SRM, lifts), ramp
``%health MODEL [--alias A] [--window 1d]``   drift vs the training snapshot, online AUC, calibration
============================================  =====================================================

Nothing here is imported by ``import proml_lab``; IPython is imported when the extension loads.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension"]

_LOADED: dict[int, tuple[Any, Any]] = {}  # id(shell) -> (magics, completion matcher)


def load_ipython_extension(ipython: Any) -> None:
    """Register the ProML magics, their ``%config`` options and feature-name completion on *ipython*.

    Examples
    --------
    >>> from IPython.testing.globalipapp import start_ipython   # doctest: +SKIP
    >>> load_ipython_extension(start_ipython())                   # doctest: +SKIP
    """
    from proml_lab.lab.magics import ProMLMagics, feature_matcher

    unload_ipython_extension(ipython)
    magics = ProMLMagics(shell=ipython)  # joins ipython.configurables, so %config and profiles reach it
    ipython.register_magics(magics)
    matcher = feature_matcher(magics)
    completer = getattr(ipython, "Completer", None)
    if completer is not None:
        completer.custom_matchers.append(matcher)
    _LOADED[id(ipython)] = (magics, matcher)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove what :func:`load_ipython_extension` added (``%reload_ext proml_lab`` calls both)."""
    loaded = _LOADED.pop(id(ipython), None)
    if loaded is None:
        return
    magics, matcher = loaded
    if magics in ipython.configurables:
        ipython.configurables.remove(magics)
    completer = getattr(ipython, "Completer", None)
    if completer is not None and matcher in completer.custom_matchers:
        completer.custom_matchers.remove(matcher)
    for kind, table in magics.magics.items():
        for name in table:
            ipython.magics_manager.magics[kind].pop(name, None)
