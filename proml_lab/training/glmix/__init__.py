"""Generalized linear mixed models: a fixed effect plus per-entity random effects, by coordinate descent.

>>> from proml_lab.training.glmix import GLMixSpec, RandomEffect, fit_glmix   # doctest: +SKIP
>>> spec = GLMixSpec(features=("x",), random_effects=(RandomEffect("per_member", "member_id", ("x",)),))
>>> model = fit_glmix(train_df, spec, validation=valid_df)                      # doctest: +SKIP

``fit_glmix_spark`` fits the same model from a Spark DataFrame (pyspark is imported only then).
"""

from __future__ import annotations

from typing import Any

from proml_lab.training.glmix.fit import fit_glmix
from proml_lab.training.glmix.model import GLMixModel, GLMixSpec, RandomEffect

__all__ = ["GLMixModel", "GLMixSpec", "RandomEffect", "fit_glmix", "fit_glmix_spark"]


def __getattr__(name: str) -> Any:
    if name == "fit_glmix_spark":  # keeps pyspark out of `import proml_lab.training.glmix`
        from proml_lab.training.glmix.spark import fit_glmix_spark

        return fit_glmix_spark
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
