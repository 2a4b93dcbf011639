"""The model card of a registered model, generated from its registry record (Markdown).

One function, :func:`model_card`, turns what the registry knows (identity, data and its
split, decision rule, held-out metrics, training run, lineage) into the card the Models
page and ``imaging-lab models show`` display. Nothing is written by hand, so the card
never disagrees with the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["model_card"]


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(rows: list[tuple[str, str]]) -> str:
    return "\n".join(["| | |", "| --- | --- |", *(f"| {name} | {value} |" for name, value in rows)])


def _data_section(data: Mapping[str, Any]) -> str:
    splits = data.get("splits") or {}
    counts = data.get("study_counts") or {}
    slices = data.get("slice_counts") or {}
    lines = [
        "## Data",
        "",
        f"Reviewed labels of the store (`Catalog.training_set()`), manifest `{data.get('manifest_sha256', 'n/a')}`.",
        "Split by patient pseudonym (`split_group`): the slices of one patient are all on one side.",
        "",
        "| split | studies | lesion studies | labelled slices (no lesion / lesion) |",
        "| --- | --- | --- | --- |",
    ]
    for name in ("train", "validation", "test"):
        study = counts.get(name) or {}
        sliced = slices.get(name) or {}
        lines.append(
            f"| {name} | {len(splits.get(name) or [])} | {study.get('lesion', 0)} | "
            f"{sliced.get('no_lesion', 0)} / {sliced.get('lesion', 0)} |"
        )
    if data.get("synthetic_lesions"):
        lines += [
            "",
            f"Training slices without a lesion got a synthetic one with probability {data['synthetic_lesions']}.",
        ]
    return "\n".join(lines)


def model_card(record: Mapping[str, Any]) -> str:
    """The Markdown model card of a model record (:func:`imaging_lib.store.model_records.model_record` fields).

    Parameters
    ----------
    record : mapping
        A model record, or the fields it is built from (``model_id``, ``architecture``,
        ``decision``, ``metrics``, ``data``, ``lineage``, ``training``...).

    Returns
    -------
    str
    """
    architecture = record.get("architecture") or {}
    decision = record.get("decision") or {}
    metrics = record.get("metrics") or {}
    lineage = record.get("lineage") or {}
    training = record.get("training") or {}
    code = lineage.get("code_version") or {}
    made = record.get("provenance") or {}
    params = ", ".join(f"{k}={v}" for k, v in sorted((architecture.get("params") or {}).items()))
    identity = _table(
        [
            ("model id", f"`{record.get('model_id')}`"),
            ("checksum (spec + weights)", f"`{record.get('model_checksum')}`"),
            ("architecture", f"`{architecture.get('name')}` ({params})"),
            ("trained by", str(made.get("created_by") or training.get("created_by") or "n/a")),
            ("training job", f"{training.get('job_id', 'n/a')} / {training.get('trial_id', 'n/a')}"),
            ("parent model", str(lineage.get("parent_model") or "none")),
            (
                "code version",
                f"imaging-lab {code.get('library_version', 'n/a')}, source `{code.get('source_sha256', 'n/a')}`",
            ),
        ]
    )
    rule = (
        f"Study score: mean of the {decision.get('k')} highest slice probabilities"
        if decision.get("aggregate") == "top_k_mean"
        else "Study score: the highest slice probability"
    )
    held_out = _table(
        [
            ("slice ROC AUC, test studies", _number(metrics.get("test_slice_auc"))),
            ("slice ROC AUC, validation studies", _number(metrics.get("validation_slice_auc"))),
            ("study sensitivity at the threshold", _number(metrics.get("study_sensitivity"))),
            ("study specificity at the threshold", _number(metrics.get("study_specificity"))),
            (
                "test studies (TP / FN / TN / FP)",
                " / ".join(str(metrics.get(f"study_{n}", "n/a")) for n in ("tp", "fn", "tn", "fp")),
            ),
        ]
    )
    parameters = lineage.get("training_parameters") or {}
    epochs = training.get("epochs") or []
    stopped = training.get("stopped") or "ran every epoch"
    return "\n\n".join(
        [
            f"# Model card: `{record.get('model_id')}`",
            "**A research model, not a diagnostic device.** It answers one question per slice "
            "(lesion or no lesion) and labels a study by the rule below. Its numbers come from a few "
            "held-out studies of this store and carry wide uncertainty.",
            identity,
            _data_section(record.get("data") or {}),
            "## Decision rule\n\n"
            f"{rule}; the study is labelled lesion from **{_number(decision.get('threshold'), 4)}**. "
            f"Chosen on: {decision.get('chosen_on', 'n/a')}.",
            "## Held-out metrics\n\n" + held_out,
            "## Training\n\n"
            f"{len(epochs)} epoch(s), weights of epoch {training.get('best_epoch', 'n/a')} kept ({stopped}). "
            "Parameters: " + ", ".join(f"`{k}={v}`" for k, v in sorted(parameters.items())) + ".",
            "## Intended use and limits\n\n"
            "Comparing models and checking the platform on this project's own data. The slice labels come "
            "from reviewed masks and slice labels; studies with a study label only take part in the "
            "study-level numbers. Probabilities are not calibrated for any population.",
        ]
    )
