"""Rank in this process with a deployed model, as the service would, without HTTP (``%rank`` uses it).

The deployment is resolved through its alias pointer (one ``stat``), and the version is loaded through the
service's own :class:`~proml_lab.serving.models.ModelCache` (one cache per workspace, the newest versions
kept in memory), so a notebook ranks exactly what ``POST /v1/rank`` answers.

Examples
--------
>>> rank_once(ws, "world_job_recommendations", 7, k=5)        # doctest: +SKIP
   document_id  position     score
0           42         1  0.731...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from proml_lab.serving.models import ModelCache
    from proml_lab.workspace import Workspace

__all__ = ["rank_once"]

_CACHES: dict[Path, ModelCache] = {}  # workspace root -> its models, loaded once per version
_COLUMNS = ("document_id", "position", "score")


def rank_once(workspace: Workspace, name: str, member_id: Any, *, k: int | None = 10, alias: str = "champion",
              explain: bool = False, candidates: Sequence[Any] | None = None,
              filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The top ``k`` documents the deployment ``name``/``alias`` gives ``member_id``, as a DataFrame.

    Parameters
    ----------
    workspace
        The workspace the model is deployed in.
    name, alias
        The deployed model and the alias to serve it from.
    member_id
        The member (a string of digits is accepted for integer ids, as in JSON requests).
    k
        How many documents to return; None: every candidate.
    explain
        Add one column per program node with its value for each returned document (a node named like one
        of the base columns is shown as ``"<name> (node)"``).
    candidates, filters
        As in ``POST /v1/rank``: restrict the documents ranked.

    Returns
    -------
    pandas.DataFrame
        Columns ``document_id``, ``position`` (1-based), ``score`` and the explained nodes. ``attrs`` holds
        ``model``, ``alias``, ``version``, ``member_id``, ``member_known``, ``candidates`` and
        ``unknown_candidates``.

    Raises
    ------
    NotDeployedError
        Nothing is deployed for ``name``/``alias``.
    RequestError
        A bad member id, candidate or filter.
    """
    import pandas as pd

    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"The 'k' parameter of rank_once must be an int in [1, inf) or None. "
                         f"Got {k!r} instead.")
    model = _cache(workspace).get(name, alias)
    ranked = model.rank(member_id, k=k, candidates=candidates, filters=filters, explain=explain)
    frame = pd.DataFrame({"document_id": ranked.document_ids,
                          "position": np.arange(1, len(ranked.document_ids) + 1),
                          "score": np.asarray(ranked.scores, dtype=np.float64)})
    for node, values in ranked.explain.items():
        values = np.asarray(values)
        column = f"{node} (node)" if node in _COLUMNS else node
        frame[column] = list(values) if values.ndim > 1 else values
    frame.attrs.update(model=model.name, alias=alias, version=model.version, member_id=member_id,
                       member_known=ranked.member_known, candidates=ranked.candidates,
                       unknown_candidates=ranked.unknown_candidates)
    return frame


def _cache(workspace: Workspace) -> ModelCache:
    """The workspace's model cache (no watcher thread: each call resolves the pointer itself)."""
    from proml_lab.serving.models import ModelCache

    root = Path(workspace.root).resolve()
    cache = _CACHES.get(root)
    if cache is None:
        cache = _CACHES[root] = ModelCache(workspace)
    return cache
