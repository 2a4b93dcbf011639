"""Training data and the shipped model's quality, recomputed (never read from the model card)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from imaging_lib import models
from imaging_lib.models import load_model, training
from imaging_lib.models.decision import DecisionRule
from imaging_lib.models.training import base_slices, heldout_auc, heldout_set, insert_lesion

MODEL_CARD = Path(models.__file__).parent / "MODEL_CARD.md"


def test_base_slices_are_real_and_split_by_slice():
    slices = base_slices()
    sources = {s.source.split("[")[0] for s in slices}
    assert {"brain_series", "sample_image", "CT_small.dcm", "MR_small.dcm"} <= sources
    train = {s.source for s in slices if not s.heldout}
    held = {s.source for s in slices if s.heldout}
    assert train and held and not train & held
    assert 0.1 < len(held) / len(slices) < 0.4
    for s in slices[:10]:
        assert s.image.shape == training.INPUT_SIZE and s.image.min() >= 0 and s.image.max() <= 1
        assert s.anatomy.mean() >= 0.15


def test_inserted_lesion_lies_inside_the_anatomy_and_changes_only_its_area():
    rng = np.random.default_rng(7)
    base = base_slices()[3]
    for _ in range(20):
        image, mask = insert_lesion(base.image, base.anatomy, rng)
        assert mask.sum() > 20
        centre = np.round(np.argwhere(mask).mean(axis=0)).astype(int)
        assert base.anatomy[tuple(centre)]
        change = np.abs(image - base.image)
        assert change[mask].mean() > 0.15
        near = ndimage.binary_dilation(mask, iterations=25)
        assert change[~near].max() < 0.02  # the soft edge has faded
        rows, cols = np.nonzero(change)
        assert mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].any()
        assert (rows.max() - rows.min()) < 6 * np.sqrt(mask.sum())  # changed only around the lesion


def test_heldout_set_is_reproducible_and_balanced():
    first, second = heldout_set(40), heldout_set(40)
    assert np.array_equal(first.images, second.images) and np.array_equal(first.labels, second.labels)
    assert first.labels.sum() == 20
    assert all(first.masks[i].any() == bool(first.labels[i]) for i in range(40))


@pytest.mark.slow
def test_shipped_model_reaches_the_auc_its_card_reports():
    model = load_model(models.DEMO_MODEL_URI)
    auc = heldout_auc(model.module)
    assert auc >= 0.95
    reported = float(re.search(r"held-out ROC AUC[^0-9]*([0-9.]+)", MODEL_CARD.read_text()).group(1))
    assert abs(auc - reported) < 0.005


@pytest.mark.slow
def test_a_short_training_run_learns_and_exports(tmp_path: Path):
    seen = []
    model, history = training.train_demo_model(
        epochs=2, samples_per_epoch=256, width=8, on_epoch=lambda h: seen.append(len(h["loss"]))
    )
    assert seen == [1, 2]
    assert history["loss"][1] < history["loss"][0]
    rule = DecisionRule("top_k_mean", 3, 0.9, "a test")
    metrics = {"heldout_auc": history["heldout_auc"][-1]}
    spec_path = training.export_model(model, tmp_path, "short_run", metrics, rule)
    loaded = load_model(str(spec_path))
    assert loaded.spec.metrics["heldout_auc"] == history["heldout_auc"][-1] and loaded.spec.decision_rule == rule
    assert loaded.spec.architecture_params["width"] == 8


@pytest.mark.slow
def test_the_shipped_decision_rule_is_reproduced_by_its_calibration():
    """The threshold in the shipped spec is the one calibrate_demo_decision chooses; the card states it."""
    model = load_model(models.DEMO_MODEL_URI)
    rule, metrics = training.calibrate_demo_decision(model)
    assert rule == model.spec.decision_rule
    assert {name: model.spec.metrics[name] for name in metrics} == metrics
    assert metrics["study_specificity"] >= 0.8 and metrics["study_sensitivity"] >= 0.9
    assert f"{rule.threshold}" in MODEL_CARD.read_text()
