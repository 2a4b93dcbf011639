"""Train slice classifiers on a store's reviewed labels, with any registered model builder.

:class:`TrainingParams` describes a trial, :func:`grid` and :func:`random_search` make
sweeps of them, and :func:`run_trial` trains, evaluates and registers one (it is what a
Dask task of :func:`imaging_lib.jobs.run_training` runs). The data come from
``Catalog.training_set()``, split by patient (:func:`split_by_group`), never by slice;
:func:`request_cancel` stops a running job from any process. The modules that need torch
(:mod:`.trial`, :mod:`.data`) load on first use, so parameters and sweeps stay light.
"""

from importlib import import_module
from typing import Any

from .control import cancellation, metrics_topic, request_cancel
from .params import TrainingParams, grid, random_search, trial_ids
from .split import SPLITS, split_by_group

__all__ = [
    "SPLITS",
    "TrainingData",
    "TrainingParams",
    "cancellation",
    "check_training_set",
    "grid",
    "load_training_data",
    "metrics_topic",
    "random_search",
    "request_cancel",
    "run_trial",
    "slice_targets",
    "split_by_group",
    "trial_ids",
]

_LAZY = {
    "run_trial": ".trial",
    "TrainingData": ".data",
    "check_training_set": ".data",
    "load_training_data": ".data",
    "slice_targets": ".data",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
