"""Sweeps: a grid takes every combination, a random search draws within its bounds, both bounded in size."""

from __future__ import annotations

import math

import pytest

from imaging_lib.limits import TRAINING_MAX_TRIALS
from imaging_lib.training import TrainingParams, grid
from imaging_lib.training.params import random_search

BASE = TrainingParams(epochs=3)


def test_a_grid_takes_every_combination_over_the_base():
    trials = grid(BASE, {"learning_rate": [0.001, 0.01], "seed": [0, 1, 2]})
    assert sorted((t.learning_rate, t.seed) for t in trials) == [(lr, s) for lr in (0.001, 0.01) for s in (0, 1, 2)]
    assert {t.epochs for t in trials} == {3}


def test_a_random_search_draws_log_uniform_integers_and_choices_repeatably():
    space = {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "seed": {"low": 0, "high": 9}}
    space["batch_size"] = [8, 16]
    trials = random_search(BASE, space, count=24, seed=3)
    rates = [t.learning_rate for t in trials]
    assert len(trials) == 24 and all(1e-4 <= rate <= 1e-2 for rate in rates)
    assert min(rates) < 1e-3 < max(rates)  # log-uniform: both decades are visited
    assert all(isinstance(t.seed, int) and 0 <= t.seed <= 9 for t in trials) and len({t.seed for t in trials}) > 3
    assert {t.batch_size for t in trials} == {8, 16}
    again = random_search(BASE, space, count=24, seed=3)
    assert [t.to_dict() for t in again] == [t.to_dict() for t in trials]
    assert [t.to_dict() for t in random_search(BASE, space, count=24, seed=4)] != [t.to_dict() for t in trials]


def test_sweeps_larger_than_the_limit_are_refused_before_anything_runs():
    side = math.isqrt(TRAINING_MAX_TRIALS) + 1
    with pytest.raises(ValueError, match="trials"):
        grid(BASE, {"seed": list(range(side)), "epochs": list(range(1, side + 1))})
    with pytest.raises(ValueError, match="trials"):
        random_search(BASE, {"seed": [0, 1]}, count=TRAINING_MAX_TRIALS + 1)
