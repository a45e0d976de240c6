"""A tiny third-party Quasar operator package (installed in tests by putting this folder on sys.path)."""

import numpy as np

from proml_lab.quasar.ops import Arg, operator


@operator("Squash", args=[Arg("x", types=("double",))], output="double")
def squash(x):
    """x / (1 + |x|): a soft sign."""
    x = np.asarray(x, dtype=np.float64)
    return x / (1.0 + np.abs(x))
