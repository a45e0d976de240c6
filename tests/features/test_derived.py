import numpy as np
import pytest

from proml_lab.errors import UnknownFeatureError
from proml_lab.features.derived import compute_derived, derived_function, get_derived_function


def test_builtins_are_vectorized_and_null_aware():
    views = np.array([0.0, 3.0, np.nan])
    other = np.array([1.0, np.nan, np.nan])
    np.testing.assert_allclose(compute_derived("log1p_sum", {"a": views, "b": other}), np.log1p([1.0, 3.0, 0.0]))
    out = compute_derived("at_least", {"x": np.array([3.0, 4.0, np.nan])}, {"threshold": 4})
    np.testing.assert_array_equal(out[:2], [0.0, 1.0])
    assert np.isnan(out[2])
    np.testing.assert_allclose(
        compute_derived("ratio", {"c": np.array([1.0, 2.0]), "i": np.array([9.0, 1.0])},
                        {"numerator": "c", "denominator": "i"}),
        [0.1, 1.0],
    )


def test_registered_function_is_used_by_name():
    @derived_function("test_square")
    def square(x, **_):
        return x * x

    assert get_derived_function("test_square") is square
    np.testing.assert_array_equal(compute_derived("test_square", {"x": np.arange(3.0)}), [0.0, 1.0, 4.0])


def test_unknown_function_suggests_close_names():
    with pytest.raises(UnknownFeatureError, match=r"Unknown derived-feature function 'log1p_summ'. Did you mean: log1p_sum\?"):
        get_derived_function("log1p_summ")


def test_wrong_output_length_is_caught():
    @derived_function("test_bad_length")
    def bad(x, **_):
        return x[:1]

    with pytest.raises(ValueError, match="returned \\(1,\\) values for 3 rows"):
        compute_derived("test_bad_length", {"x": np.arange(3.0)})
