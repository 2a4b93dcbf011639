"""A trained network on the held-out splits: its study threshold, slice AUC, sensitivity and specificity.

The study-level decision rule is chosen on the **validation** studies
(:func:`imaging_lib.models.decision.choose_threshold` on the mean of the ``k`` highest slice
probabilities) and then judged on the **test** studies, which took no part in training,
early stopping or the threshold. With too few patients for a test split, the numbers come
from the validation split and the record says so (``evaluated_on``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models.decision import DecisionRule, choose_threshold, roc_auc, roc_points, study_metrics
from .data import UNLABELLED, StudySlices, TrainingData

__all__ = ["evaluate", "positive_probabilities", "to_model_batch"]

POSITIVE = 1  # class_names ("no_lesion", "lesion")


def to_model_batch(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Grey ``(n, h, w)`` slices as the model's ``(n, 3, h, w)`` input (grey replicated, as inference does)."""
    grey = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device)
    return grey[:, None].expand(-1, 3, -1, -1).contiguous()


def positive_probabilities(
    module: nn.Module, images: np.ndarray, batch_size: int = 64, device: torch.device | str = "cpu"
) -> np.ndarray:
    """The lesion probability of every slice of ``images`` (``(n, h, w)``), in eval mode."""
    module.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            logits = module(to_model_batch(images[start : start + batch_size], device))
            out.append(torch.softmax(logits.float(), dim=1)[:, POSITIVE].cpu().numpy())
    return np.concatenate(out) if out else np.empty(0, np.float32)


def _scored(
    module: nn.Module, studies: Sequence[StudySlices], rule: DecisionRule, device: torch.device | str
) -> tuple[list[float], list[int], np.ndarray, np.ndarray]:
    """Study scores and labels, and the labelled slices' probabilities and targets, of some studies."""
    scores, labels, slice_scores, slice_targets = [], [], [], []
    for study in studies:
        probabilities = positive_probabilities(module, study.images, device=device)
        scores.append(rule.score(probabilities))
        labels.append(study.study_label)
        known = study.targets != UNLABELLED
        slice_scores.append(probabilities[known])
        slice_targets.append(study.targets[known])
    return scores, labels, np.concatenate(slice_scores or [[]]), np.concatenate(slice_targets or [[]])


def evaluate(
    module: nn.Module, data: TrainingData, decision_k: int, device: torch.device | str = "cpu"
) -> tuple[DecisionRule, dict[str, Any], dict[str, Any]]:
    """Choose the decision rule on validation studies and measure the model on the test studies.

    Parameters
    ----------
    module : torch.nn.Module
        The trained network (its best epoch's weights).
    data : TrainingData
    decision_k : int
        Slices averaged into the study score.
    device : torch.device or str

    Returns
    -------
    (DecisionRule, dict, dict)
        The rule; metrics (``validation_slice_auc``, ``test_slice_auc``, ``study_threshold``,
        ``study_sensitivity``, ``study_specificity``, ``study_tp``... ``evaluated_on``); ROC
        points ``{"slice": ..., "study": ...}`` of the held-out studies.
    """
    aggregate = DecisionRule("top_k_mean", decision_k)
    validation = data.split("validation")
    scores, labels, val_slices, val_targets = _scored(module, validation, aggregate, device)
    threshold = round(choose_threshold(scores, labels), 4)
    rule = aggregate.with_threshold(
        threshold,
        f"Youden's J on the validation split: {sum(labels)} lesion and {len(labels) - sum(labels)} no-lesion studies",
    )
    held_out = "test" if data.split("test") else "validation"
    if held_out == "test":
        scores, labels, slices, targets = _scored(module, data.split("test"), aggregate, device)
    else:
        slices, targets = val_slices, val_targets
    found = study_metrics(scores, labels, threshold)
    metrics = {
        "evaluated_on": held_out,
        "validation_slice_auc": roc_auc(val_slices, val_targets),
        "test_slice_auc": roc_auc(slices, targets),
        "study_auc": roc_auc(scores, labels),
        "study_threshold": threshold,
        **{f"study_{name}": found[name] for name in ("sensitivity", "specificity", "tp", "fn", "tn", "fp")},
    }
    return rule, metrics, {"slice": roc_points(slices, targets), "study": roc_points(scores, labels)}
