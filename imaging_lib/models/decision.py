"""A model's study-level decision rule: aggregate the slice probabilities, compare with a calibrated threshold.

A slice classifier scores every slice; a study needs one answer. Taking the maximum over
up to a few hundred slices and comparing it with a *slice* threshold flags almost every
healthy study, since among many slices one always looks suspicious. A :class:`DecisionRule`
is part of the model (the ``decision`` object of its spec, so it is covered by the model's
checksum):

* ``aggregate``: ``"top_k_mean"`` (the mean of the ``k`` highest slice probabilities; a
  study with fewer slices uses them all) or ``"max"`` (``k`` = 1, the old rule);
* ``threshold``: the study is positive when the aggregated score reaches it. It is
  *chosen on validation studies* (:func:`choose_threshold`), not assumed to be 0.5;
* ``chosen_on``: what it was chosen on, in words.

:func:`study_metrics` gives sensitivity and specificity at a threshold, :func:`roc_points`
the ROC curve that the Models page draws. Everything here is pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidModelSpec

__all__ = [
    "AGGREGATES",
    "DEFAULT_RULE",
    "DecisionRule",
    "choose_threshold",
    "roc_auc",
    "roc_points",
    "study_metrics",
]

Values = Sequence[float] | np.ndarray
"""Scores or labels: a sequence or a 1D array."""
AGGREGATES = ("max", "top_k_mean")
"""How slice probabilities become a study score."""
MAX_K = 64
MAX_ROC_POINTS = 101


@dataclass(frozen=True)
class DecisionRule:
    """How a model labels a study from its slice probabilities.

    Attributes
    ----------
    aggregate : str
        One of :data:`AGGREGATES`.
    k : int
        Slices averaged by ``"top_k_mean"`` (1 for ``"max"``).
    threshold : float
        Study score from which the study is positive, in ``[0, 1]``.
    chosen_on : str
        How the threshold was chosen (for the model card).
    """

    aggregate: str = "max"
    k: int = 1
    threshold: float = 0.5
    chosen_on: str = "not calibrated: a slice probability of 0.5 (specs without a decision rule)"

    def score(self, slice_probabilities: Values) -> float:
        """The study's score: the mean of its ``k`` highest slice probabilities (``max``: the highest).

        Raises
        ------
        ValueError
            If there are no slice probabilities.
        """
        values = np.asarray(slice_probabilities, dtype=np.float64).ravel()
        if values.size == 0:
            raise ValueError("a study score needs at least one slice probability")
        k = 1 if self.aggregate == "max" else min(self.k, values.size)
        return float(np.mean(np.partition(values, values.size - k)[values.size - k :]))

    def is_positive(self, score: float) -> bool:
        """Whether a study of this score is labelled positive."""
        return bool(score >= self.threshold)

    def with_threshold(self, threshold: float, chosen_on: str) -> DecisionRule:
        """The same aggregation with another threshold."""
        return DecisionRule(self.aggregate, self.k, float(threshold), chosen_on)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in a spec's ``decision``."""
        return {"aggregate": self.aggregate, "k": self.k, "threshold": self.threshold, "chosen_on": self.chosen_on}

    @classmethod
    def from_dict(cls, data: Any, source: str = "<spec>") -> DecisionRule:
        """Read and check a spec's ``decision`` object.

        Raises
        ------
        InvalidModelSpec
            If it is not an object, names an unknown aggregate, or has ``k`` or ``threshold`` out of range.
        """
        if not isinstance(data, Mapping):
            raise InvalidModelSpec(source, f"decision must be a JSON object, got {type(data).__name__}")
        aggregate = data.get("aggregate", "max")
        if aggregate not in AGGREGATES:
            raise InvalidModelSpec(source, f"decision aggregate must be one of {AGGREGATES}, not {aggregate!r}"[:200])
        k = data.get("k", 1)
        if type(k) is not int or not 1 <= k <= MAX_K:
            raise InvalidModelSpec(source, f"decision k must be an integer from 1 to {MAX_K}, not {k!r}"[:200])
        threshold = data.get("threshold", 0.5)
        if type(threshold) not in (int, float) or not 0.0 <= float(threshold) <= 1.0:
            raise InvalidModelSpec(source, f"decision threshold must be a number in [0, 1], not {threshold!r}"[:200])
        chosen_on = data.get("chosen_on", "")
        if not isinstance(chosen_on, str) or len(chosen_on) > 500:
            raise InvalidModelSpec(source, "decision chosen_on must be a text of at most 500 characters")
        return cls(str(aggregate), 1 if aggregate == "max" else k, float(threshold), chosen_on)


DEFAULT_RULE = DecisionRule()
"""The rule of a spec that states none: the maximum slice probability against 0.5 (the old behaviour)."""


def _labels_scores(scores: Values, labels: Values) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(scores, dtype=np.float64).ravel()
    truth = np.asarray(labels, dtype=np.int64).ravel()
    if values.shape != truth.shape:
        raise ValueError(f"{values.size} scores for {truth.size} labels")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores must be finite")
    return values, truth


def study_metrics(scores: Values, labels: Values, threshold: float) -> dict[str, Any]:
    """Sensitivity and specificity of ``score >= threshold`` against ``labels`` (1 = lesion).

    Returns
    -------
    dict
        ``sensitivity``, ``specificity`` (None when the class is absent), ``tp``, ``fn``,
        ``tn``, ``fp``, ``threshold``.
    """
    values, truth = _labels_scores(scores, labels)
    flagged = values >= threshold
    tp, fn = int(np.sum(flagged & (truth == 1))), int(np.sum(~flagged & (truth == 1)))
    tn, fp = int(np.sum(~flagged & (truth == 0))), int(np.sum(flagged & (truth == 0)))
    return {
        "threshold": float(threshold),
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
        "tp": tp,
        "fn": fn,
        "tn": tn,
        "fp": fp,
    }


def choose_threshold(scores: Values, labels: Values) -> float:
    """The threshold that maximises Youden's J (sensitivity + specificity - 1) on these studies.

    Candidates are the midpoints between consecutive distinct scores, so the threshold
    keeps the widest margin on either side. Among equally good ones the highest wins:
    a false alarm on a healthy study costs a reviewer's time, so ties go to specificity.

    Parameters
    ----------
    scores : sequence of float
        Study scores (:meth:`DecisionRule.score`) of validation studies.
    labels : sequence of int
        1 for lesion, 0 for no lesion; both must occur.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If one class is missing.
    """
    values, truth = _labels_scores(scores, labels)
    if not (truth == 1).any() or not (truth == 0).any():
        raise ValueError("choosing a threshold needs validation studies of both classes")
    distinct = np.unique(values)
    candidates = np.concatenate(([distinct[0] / 2], (distinct[:-1] + distinct[1:]) / 2, [(distinct[-1] + 1) / 2]))
    positives, negatives = truth == 1, truth == 0
    best, best_j = float(candidates[-1]), -np.inf
    for threshold in candidates:
        flagged = values >= threshold
        j = flagged[positives].mean() + (~flagged[negatives]).mean() - 1.0
        if j >= best_j - 1e-12:
            best, best_j = float(threshold), j
    return best


def roc_auc(scores: Values, labels: Values) -> float | None:
    """ROC AUC of ``scores`` for ``labels`` (None when one class is missing)."""
    values, truth = _labels_scores(scores, labels)
    if not (truth == 1).any() or not (truth == 0).any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, values))


def roc_points(scores: Values, labels: Values) -> dict[str, list[float]]:
    """The ROC curve (at most :data:`MAX_ROC_POINTS` points, ends included), for plots and records.

    Returns
    -------
    dict
        ``fpr``, ``tpr``, ``thresholds`` (lists of equal length; empty when one class is missing).
    """
    values, truth = _labels_scores(scores, labels)
    if not (truth == 1).any() or not (truth == 0).any():
        return {"fpr": [], "tpr": [], "thresholds": []}
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(truth, values, drop_intermediate=True)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), MAX_ROC_POINTS)).round().astype(int))
    thresholds = np.minimum(thresholds[keep], 1.0)  # sklearn puts +inf first
    return {
        "fpr": [round(float(v), 6) for v in fpr[keep]],
        "tpr": [round(float(v), 6) for v in tpr[keep]],
        "thresholds": [round(float(v), 6) for v in thresholds],
    }
