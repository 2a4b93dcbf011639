"""The study decision rule: aggregation, the threshold chosen on validation studies, its metrics, its spec form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imaging_lib.errors import InvalidModelSpec
from imaging_lib.models import ModelSpec, model_checksum
from imaging_lib.models.decision import (
    DEFAULT_RULE,
    DecisionRule,
    choose_threshold,
    roc_auc,
    roc_points,
    study_metrics,
)
from imaging_lib.models.loading import _package_spec_path


def test_top_k_mean_averages_the_k_most_suspicious_slices_and_max_takes_one():
    probabilities = [0.1, 0.9, 0.2, 0.8, 0.7]
    assert DecisionRule("top_k_mean", 3).score(probabilities) == pytest.approx(0.8)
    assert DecisionRule("max", 1).score(probabilities) == pytest.approx(0.9)
    assert DecisionRule("top_k_mean", 10).score([0.4, 0.6]) == pytest.approx(0.5)  # fewer slices than k: all
    with pytest.raises(ValueError, match="at least one"):
        DecisionRule("top_k_mean", 3).score([])


def test_one_suspicious_slice_among_many_no_longer_decides_the_study():
    healthy = np.full(150, 0.05)
    healthy[37] = 0.95  # one odd-looking slice of a long healthy series
    rule = DecisionRule("top_k_mean", 3, 0.78)
    assert DEFAULT_RULE.is_positive(DEFAULT_RULE.score(healthy))  # the old rule flags it
    assert not rule.is_positive(rule.score(healthy))
    lesion = healthy.copy()
    lesion[80:84] = 0.97  # a lesion seen on consecutive slices
    assert rule.is_positive(rule.score(lesion))


def test_the_threshold_maximises_youden_with_the_widest_margin_and_ties_go_to_specificity():
    scores = [0.1, 0.3, 0.35, 0.8, 0.9]
    labels = [0, 0, 0, 1, 1]
    assert choose_threshold(scores, labels) == pytest.approx((0.35 + 0.8) / 2)
    # overlapping classes: one threshold misses a lesion, the other flags a healthy study; specificity wins
    threshold = choose_threshold([0.2, 0.6, 0.5, 0.9], [0, 0, 1, 1])
    assert study_metrics([0.2, 0.6, 0.5, 0.9], [0, 0, 1, 1], threshold)["fp"] == 0
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold([0.2, 0.4], [0, 0])


def test_study_metrics_count_every_outcome():
    found = study_metrics([0.9, 0.2, 0.7, 0.1, 0.6], [1, 1, 0, 0, 1], 0.5)
    assert (found["tp"], found["fn"], found["tn"], found["fp"]) == (2, 1, 1, 1)
    assert found["sensitivity"] == pytest.approx(2 / 3) and found["specificity"] == pytest.approx(0.5)
    assert study_metrics([0.9], [1], 0.5)["specificity"] is None


def test_roc_points_and_auc():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 200)
    scores = np.concatenate([rng.normal(0, 1, 200), rng.normal(1.5, 1, 200)])
    roc = roc_points(scores, labels)
    assert roc["fpr"][0] == 0 and roc["fpr"][-1] == 1 and roc["tpr"][-1] == 1
    assert len(roc["fpr"]) <= 101 and np.all(np.diff(roc["fpr"]) >= 0)
    assert 0.8 < roc_auc(scores, labels) < 0.9
    assert roc_points([0.1, 0.2], [1, 1]) == {"fpr": [], "tpr": [], "thresholds": []}
    assert roc_auc([0.1, 0.2], [1, 1]) is None


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        ([], "JSON object"),
        ({"aggregate": "median"}, "aggregate"),
        ({"aggregate": "top_k_mean", "k": 0}, "k must"),
        ({"aggregate": "top_k_mean", "k": 3, "threshold": 1.5}, "threshold"),
        ({"aggregate": "top_k_mean", "k": 3, "threshold": "0.5"}, "threshold"),
    ],
)
def test_a_spec_with_a_bad_decision_rule_is_refused(decision, message):
    data = json.loads(Path(_package_spec_path("package://demo_lesion_cnn")).read_text())
    with pytest.raises(InvalidModelSpec, match=message):
        ModelSpec.from_dict({**data, "decision": decision}, "test.json")


def test_the_decision_rule_is_part_of_the_model_checksum_and_old_specs_keep_theirs():
    data = json.loads(Path(_package_spec_path("package://demo_lesion_cnn")).read_text())
    shipped = ModelSpec.from_dict(data)
    assert shipped.decision_rule == DecisionRule.from_dict(data["decision"])
    without = {key: value for key, value in data.items() if key != "decision"}
    old = ModelSpec.from_dict(without)
    assert "decision" not in old.to_dict() and old.decision_rule == DEFAULT_RULE
    moved = ModelSpec.from_dict({**data, "decision": {**data["decision"], "threshold": 0.5}})
    checksums = {model_checksum(spec, spec.sha256) for spec in (shipped, old, moved)}
    assert len(checksums) == 3
