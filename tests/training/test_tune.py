"""tune(): declared spaces, a GP sampler that beats random search, studies that persist and continue."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pytest  # noqa: E402

from proml_lab.errors import TrainingError  # noqa: E402
from proml_lab.training.tune import GPSampler, TuneResult, tune, validate_space  # noqa: E402

SPACE_2D = {
    "l2": {"type": "float", "low": 1e-3, "high": 1e3, "log": True},
    "bias": {"type": "float", "low": -5.0, "high": 5.0},
}


def bowl(params: dict) -> float:
    """A smooth maximum of 0 at l2 = 10**1.3, bias = 1.7 (a shifted quadratic in log space)."""
    return -((math.log10(params["l2"]) - 1.3) ** 2 + 0.5 * (params["bias"] - 1.7) ** 2)


def fast_gp(seed: int, **kwargs) -> GPSampler:
    return GPSampler(seed=seed, n_candidates=300, **kwargs)


# -- the declared space -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "The search space must be a non-empty dict of parameter name -> spec"),
        ({"l2": 0.5}, "Parameter 'l2' must be a dict such as {'type': 'float', 'low': 0.001, 'high': 1000.0, "
                      "'log': True}. Got 0.5 instead."),
        ({"l2": {"type": "double", "low": 1, "high": 2}},
         "Parameter 'l2' has unknown type 'double'. Use one of: categorical, float, int."),
        ({"l2": {"type": "float", "low": 1}},
         "Parameter 'l2' is missing 'high'. A float parameter needs: high, low, type."),
        ({"l2": {"type": "float", "low": 1, "high": 2, "lg": True}},
         "Parameter 'l2' has unknown key(s) 'lg'. A float parameter takes: high, log, low, step, type."),
        ({"l2": {"type": "float", "low": 10, "high": 1}},
         "Parameter 'l2' must have low < high. Got low=10, high=1 instead."),
        ({"l2": {"type": "float", "low": 1, "high": 1}},
         "Parameter 'l2' must have low < high. Got low=1, high=1 instead."),
        ({"l2": {"type": "float", "low": 0, "high": 1, "log": True}},
         "Parameter 'l2' has log=True, so low must be > 0. Got low=0 instead."),
        ({"depth": {"type": "int", "low": 2.5, "high": 10}},
         "The 'low' of parameter 'depth' must be an int. Got 2.5 instead."),
        ({"l2": {"type": "float", "low": "a", "high": 1}},
         "The 'low' of parameter 'l2' must be a finite number. Got 'a' instead."),
        ({"lr": {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}},
         "Parameter 'lr' cannot have both log=True and a step; drop one of them."),
        ({"obj": {"type": "categorical", "choices": []}},
         "Parameter 'obj' needs a non-empty list of choices. Got [] instead."),
        ({"obj": {"type": "categorical", "choices": [[1, 2]]}},
         "Parameter 'obj' has choice [1, 2] of type list; choices must be None, bool, int, float or str"),
        ({"value": {"type": "int", "low": 1, "high": 2}},
         "Parameter name 'value' is reserved (a column of TuneResult.trials); rename the parameter."),
    ],
)
def test_space_validation_messages(space, message):
    with pytest.raises(TrainingError) as info:
        validate_space(space)
    assert str(info.value).startswith(message)


def test_tune_argument_messages():
    message = r"^The 'direction' parameter of tune must be 'maximize' or 'minimize'. Got 'max' instead.$"
    with pytest.raises(TrainingError, match=message):
        tune(bowl, SPACE_2D, n_trials=2, direction="max")
    with pytest.raises(TrainingError, match=r"^The 'sampler' parameter of tune must be one of 'gp', 'random' "
                                            r"or an Optuna sampler. Got 'tpe' instead.$"):
        tune(bowl, SPACE_2D, n_trials=2, sampler="tpe")
    message = r"^The 'n_trials' parameter of tune must be an int in \[1, inf\). Got 0 instead.$"
    with pytest.raises(TrainingError, match=message):
        tune(bowl, SPACE_2D, n_trials=0)


def test_bad_objective_values_and_storage_urls_are_explained(tmp_path):
    message = r"^The objective must return a number \(the metric to optimize\). Got None instead.$"
    with pytest.raises(TrainingError, match=message):
        tune(lambda p: None, SPACE_2D, n_trials=1)
    message = r"^Cannot open the study storage 'sqlite:///.*/missing/studies.db': .*unable to open database"
    with pytest.raises(TrainingError, match=message + r" file\. Pass an Optuna storage URL whose folder"):
        tune(bowl, SPACE_2D, n_trials=1, storage=f"sqlite:///{tmp_path}/missing/studies.db")


# -- the GP sampler ---------------------------------------------------------------------------------


def test_gp_sampler_is_reproducible_with_a_seed():
    runs = [tune(bowl, SPACE_2D, n_trials=12, sampler=fast_gp(seed), seed=seed).trials for seed in (3, 3, 4)]
    cols = ["l2", "bias", "value"]
    assert runs[0][cols].equals(runs[1][cols])
    assert not runs[0][cols].equals(runs[2][cols])


def test_gp_beats_random_search_at_equal_budget():
    seeds = range(5)
    gp = [tune(bowl, SPACE_2D, n_trials=25, sampler=fast_gp(s), seed=s).best_value for s in seeds]
    rnd = [tune(bowl, SPACE_2D, n_trials=25, sampler="random", seed=s).best_value for s in seeds]
    assert np.median(gp) > np.median(rnd)
    assert np.median(gp) > -0.05  # close to the optimum 0, not just less bad than random


def test_gp_minimizes_too():
    result = tune(lambda p: -bowl(p), SPACE_2D, n_trials=20, direction="minimize", sampler=fast_gp(0))
    assert result.best_value == result.trials["value"].min()
    assert result.best_value < 0.1


def test_int_log_step_and_categorical_parameters_stay_in_bounds():
    space = {
        "depth": {"type": "int", "low": 2, "high": 10},
        "trees": {"type": "int", "low": 1, "high": 1000, "log": True},
        "leaves": {"type": "int", "low": 4, "high": 64, "step": 4},
        "frac": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.25},
        "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "objective": {"type": "categorical", "choices": ["logistic", "poisson", None]},
    }

    def objective(p):
        penalty = (p["objective"] != "poisson") + p["frac"]
        return -(math.log10(p["lr"]) + 2) ** 2 - (p["depth"] - 6) ** 2 - penalty

    result = tune(objective, space, n_trials=12, sampler=fast_gp(0, n_startup_trials=4))  # 8 GP trials
    t = result.trials
    assert t["depth"].between(2, 10).all() and t["trees"].between(1, 1000).all()
    assert all(isinstance(v, (int, np.integer)) for v in t["depth"].tolist() + t["trees"].tolist())
    assert set(t["leaves"]) <= set(range(4, 65, 4))
    assert set(t["frac"]) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert t["lr"].between(1e-4, 1.0).all()
    assert set(t["objective"]) <= {"logistic", "poisson", None}


def test_gp_sampler_in_a_plain_optuna_study():
    study = optuna.create_study(sampler=fast_gp(0, n_startup_trials=3))
    study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 0.5) ** 2, n_trials=10)
    assert len(study.trials) == 10 and study.best_value < 0.05


# -- studies, callbacks, results --------------------------------------------------------------------


def test_study_persists_in_sqlite_and_continues(workspace):
    uri = workspace.studies_uri
    assert uri.startswith("sqlite:///")
    first = tune(bowl, SPACE_2D, n_trials=5, sampler="random", study_name="glmix-l2", storage=uri)
    second = tune(bowl, SPACE_2D, n_trials=4, sampler=fast_gp(0, n_startup_trials=4), study_name="glmix-l2",
                  storage=uri)
    assert (first.study_name, second.study_name, second.storage) == ("glmix-l2", "glmix-l2", uri)
    assert second.trials["number"].tolist() == list(range(9))
    assert second.trials.iloc[:5][["l2", "bias"]].equals(first.trials[["l2", "bias"]])
    assert second.best_value == max(first.best_value, second.trials["value"].max())
    names = [s.study_name for s in optuna.get_all_study_summaries(storage=uri)]
    assert names == ["glmix-l2"]
    with pytest.raises(TrainingError, match="was created to maximize; pass direction='maximize'"):
        tune(bowl, SPACE_2D, n_trials=1, direction="minimize", study_name="glmix-l2", storage=uri)


def test_callback_sees_every_trial_and_logging_stays_quiet(capsys):
    optuna.logging.set_verbosity(optuna.logging.INFO)
    seen = []
    result = tune(bowl, SPACE_2D, n_trials=6, sampler="random",
                  callback=lambda n, params, value, best: seen.append((n, params, value, best)))
    assert optuna.logging.get_verbosity() == optuna.logging.INFO  # restored
    assert "Trial" not in capsys.readouterr().err
    assert [s[0] for s in seen] == list(range(6))
    assert [s[2] for s in seen] == result.trials["value"].tolist()
    assert [s[3] for s in seen] == np.maximum.accumulate(result.trials["value"]).tolist()
    assert seen[0][1] == {"l2": result.trials["l2"][0], "bias": result.trials["bias"][0]}


def test_result_trials_frame_and_plot():
    result = tune(bowl, SPACE_2D, n_trials=7, sampler="random", seed=1)
    assert isinstance(result, TuneResult)
    assert list(result.trials.columns) == ["number", "value", "l2", "bias", "duration"]
    assert (result.trials["duration"] >= 0).all()
    assert result.best_params == result.trials.loc[result.trials["value"].idxmax(), ["l2", "bias"]].to_dict()
    fig = result.plot()
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2  # the trials and the best-so-far step
    np.testing.assert_allclose(lines[1].get_ydata()[-1], result.best_value)
    plt.close(fig)
