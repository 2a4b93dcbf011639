"""The model registry of a store: registered models, their records, and the store's default model.

A registered model lives in the store as two files, ``models/<model_id>/model.json`` (its
spec, with the decision rule and the weights' SHA-256) and its weights beside it (a state
dict, ``model.pt`` for trained models; a shipped model keeps its file name and so its id), and
one record, ``records/models/<model_id>.json`` (:func:`imaging_lib.store.model_records.model_record`:
metrics, ROC points, splits, lineage, card). The record pins the model's checksum, and a
registered model is only ever loaded through :func:`load_registered_model`, which builds
the spec's key from the model id (a record cannot point the loader elsewhere), loads it
with :func:`~imaging_lib.models.load_model` (registered builders only, weights confined to
the model's folder, ``torch.load(weights_only=True)``) and refuses it unless its spec and
weights still have that checksum. A store writer who swaps the weights gets a
:class:`~imaging_lib.errors.ModelChecksumMismatch`, never a different model.

:func:`promote` (``promote`` permission, ``admin`` role: :func:`imaging_lib.identity.require`)
writes a promotion record; the newest promotion names the store's default model
(:func:`default_model`), which the batch, the study browser and the reports use. A store
with no promotion uses the model shipped in the package (:data:`~imaging_lib.models.DEMO_MODEL_URI`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidModelSpec, KeyExists, MissingRecord, ModelChecksumMismatch
from ..identity import Identity, require
from ..store import layout, model_records, records
from .card import model_card
from .loading import DEMO_MODEL_URI, LoadedModel, load_model, read_model_files
from .spec import ModelSpec, model_checksum, sha256_hex

if TYPE_CHECKING:
    from ..store.objects import Store

__all__ = [
    "MODEL_COLUMNS",
    "DefaultModel",
    "default_model",
    "ensure_default_model",
    "load_registered_model",
    "model_uri",
    "models_table",
    "promote",
    "promotions",
    "read_model_record",
    "register_model",
    "register_shipped_model",
    "registered_models",
    "resolve_model",
]


@dataclass(frozen=True)
class DefaultModel:
    """The model a store runs by default.

    Attributes
    ----------
    uri : str
        Where it loads from.
    checksum : str or None
        The checksum it is pinned to (None for the shipped model, which pins its own weights).
    model_id : str or None
        Its registry id (None for the shipped model before it is registered).
    promotion : dict or None
        The promotion record that made it the default (who, when).
    """

    uri: str
    checksum: str | None
    model_id: str | None
    promotion: dict[str, Any] | None

    def load(self) -> LoadedModel:
        """Load it, pinned to :attr:`checksum` when there is one."""
        return load_model(self.uri, self.checksum)


def model_uri(store: Store, model_id: str) -> str:
    """The URI of a registered model's spec: a local path, or the store's URL for ``gs://``."""
    return store.full_path(layout.model_file_key(model_id, layout.MODEL_SPEC_FILE))


def _catalog(store: Store, catalog: Any = None) -> Any:
    from ..store.catalog import Catalog

    return catalog if catalog is not None else Catalog(store)


def registered_models(store: Store, catalog: Any = None) -> dict[str, dict[str, Any]]:
    """Model id -> record of every registered model (the id from the record's key, whatever its body says)."""
    found = _catalog(store, catalog).records("model_record")
    return {layout.parse_as("model_record", key).model_id: {**record} for key, record in found.items()}


MODEL_COLUMNS = [
    "model_id",
    "default",
    "created_at",
    "created_by",
    "architecture",
    "validation_slice_auc",
    "test_slice_auc",
    "study_threshold",
    "study_sensitivity",
    "study_specificity",
    "evaluated_on",
    "source",
]


def models_table(store: Store, catalog: Any = None) -> Any:
    """One row per registered model, newest first, the default marked: the Models page and ``models list``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`MODEL_COLUMNS` (``created_at`` as text).
    """
    import pandas as pd

    current = default_model(store, catalog).model_id
    rows = []
    for model_id, record in registered_models(store, catalog).items():
        metrics = record.get("metrics") or {}
        lineage = record.get("lineage") or {}
        training = record.get("training") or {}
        made = record.get("provenance") or {}
        source = f"{training['job_id']}/{training['trial_id']}" if training.get("job_id") else lineage.get("source")
        rows.append(
            {
                "model_id": model_id,
                "default": model_id == current,
                "created_at": str(made.get("created_at") or ""),
                "created_by": made.get("created_by"),
                "architecture": (record.get("architecture") or {}).get("name"),
                "validation_slice_auc": metrics.get("validation_slice_auc"),
                "test_slice_auc": metrics.get("test_slice_auc", metrics.get("heldout_auc")),
                "study_threshold": (record.get("decision") or {}).get("threshold"),
                "study_sensitivity": metrics.get("study_sensitivity"),
                "study_specificity": metrics.get("study_specificity"),
                "evaluated_on": metrics.get("evaluated_on"),
                "source": source,
            }
        )
    frame = pd.DataFrame(rows, columns=MODEL_COLUMNS)
    return frame.sort_values("created_at", ascending=False, kind="stable").reset_index(drop=True)


def read_model_record(store: Store, model_id: str) -> dict[str, Any]:
    """The record of a registered model.

    Raises
    ------
    MissingRecord
        If no model of that id is registered.
    """
    try:
        key = layout.model_record_key(model_id)
    except ValueError as exc:
        raise MissingRecord(str(model_id), f"not a model id ({exc})") from None
    try:
        return records.read_record(store, key)
    except MissingRecord:
        raise MissingRecord(model_id, f"no model {model_id!r} is registered in {store.url}") from None


def load_registered_model(store: Store, model_id: str) -> LoadedModel:
    """Load a registered model from the store, pinned to the checksum its record holds.

    Raises
    ------
    MissingRecord
        If the model is not registered.
    ModelChecksumMismatch
        If its spec or weights in the store no longer have the recorded checksum.
    ModelNotFound, InvalidModelSpec, InvalidModelOutput
        As for :func:`~imaging_lib.models.load_model`.
    """
    record = read_model_record(store, model_id)
    model = load_model(model_uri(store, model_id), str(record.get("model_checksum")))
    if model.model_id != model_id:
        raise ModelChecksumMismatch(model_id, f"the files under this id are model {model.model_id}")
    return model


def _write_model_files(store: Store, spec: ModelSpec, weights: bytes) -> tuple[str, str, str]:
    """Write a model's weights and spec (weights first); return ``(model_id, checksum, weights key)``.

    The weights keep their file name (it is part of the spec, so of the checksum): a
    shipped model copied into the store keeps its id.
    """
    if "/" in spec.weights or spec.weights == layout.MODEL_SPEC_FILE:
        raise InvalidModelSpec(
            spec.name, f"a registered model's weights are one file beside its spec, not {spec.weights!r}"
        )
    sha256 = sha256_hex(weights)
    stored = ModelSpec.from_dict({**spec.to_dict(), "sha256": sha256})
    checksum = model_checksum(stored, sha256)
    model_id = f"{stored.name}-{checksum[:12]}"
    weights_key = layout.model_file_key(model_id, stored.weights)
    store.write_bytes(weights_key, weights)
    store.write_json(layout.model_file_key(model_id, layout.MODEL_SPEC_FILE), stored.to_dict())
    return model_id, checksum, weights_key


def register_model(
    store: Store,
    spec: ModelSpec,
    weights: bytes,
    *,
    metrics: Mapping[str, Any],
    lineage: Mapping[str, Any],
    roc: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    card: str | None = None,
    created_by: str | None = None,
) -> dict[str, Any]:
    """Store a model's files and record; return the record (with ``record_key``).

    The files are written first and loaded back through :func:`load_registered_model`'s
    path (builder, confinement, checksum), then the record is created. Registering the
    same model again (same spec and weights: same id) keeps the first record: a trial
    re-run after its worker died never makes a second one.

    Parameters
    ----------
    store : Store
    spec : ModelSpec
        Its spec; ``weights`` names one file (kept as the file name in the store), and
        ``sha256`` is replaced by the stored file's.
    weights : bytes
        A torch state dict (``torch.save``).
    metrics, lineage, roc, data, training : mapping
        See :func:`imaging_lib.store.model_records.model_record`.
    card : str, optional
        Default: generated by :func:`imaging_lib.models.card.model_card`.
    created_by : str, optional

    Returns
    -------
    dict

    Raises
    ------
    InvalidModelSpec, InvalidModelOutput
        If the weights do not load into the spec's architecture.
    """
    model_id, checksum, weights_key = _write_model_files(store, spec, weights)
    loaded = load_model(model_uri(store, model_id), checksum)
    key = layout.model_record_key(model_id)
    fields: dict[str, Any] = {
        "name": loaded.spec.name,
        "model_checksum": checksum,
        "spec_key": layout.model_file_key(model_id, layout.MODEL_SPEC_FILE),
        "weights_key": weights_key,
        "architecture": {"name": loaded.spec.architecture, "params": loaded.spec.architecture_params},
        "decision": loaded.spec.decision_rule.to_dict(),
        "metrics": dict(metrics),
        "roc": dict(roc or {}),
        "data": dict(data or {}),
        "lineage": dict(lineage),
        "training": dict(training or {}),
    }
    who = created_by or records.current_user()
    card = card or model_card({"model_id": model_id, **fields, "provenance": {"created_by": who}})
    record = model_records.model_record(model_id, **fields, card=card, created_by=who)
    try:
        store.create_json(key, record)
    except KeyExists:
        record = records.read_record(store, key)
    return {**record, "record_key": key}


def register_shipped_model(store: Store, uri: str = DEMO_MODEL_URI, *, created_by: str | None = None) -> dict[str, Any]:
    """Copy a model shipped in the package (default the demo model) into the registry.

    Its metrics and decision rule come from its spec; its card is the shipped
    ``MODEL_CARD.md`` when it is the demo model.

    Returns
    -------
    dict
        The model record.
    """
    from importlib import resources

    spec, weights = read_model_files(uri)
    card = None
    if uri == DEMO_MODEL_URI:
        card = (resources.files(__package__) / "MODEL_CARD.md").read_text(encoding="utf-8")
    lineage: dict[str, Any] = {"source": uri, "parent_model": None, "manifest_sha256": None, "training_parameters": {}}
    return register_model(store, spec, weights, metrics=spec.metrics, lineage=lineage, card=card, created_by=created_by)


def promotions(store: Store, catalog: Any = None) -> list[dict[str, Any]]:
    """Every promotion record, newest first (each with ``record_key``)."""
    found = _catalog(store, catalog).records("promotion_record")
    ordered = sorted(found.items(), key=lambda item: layout.parse_as("promotion_record", item[0]).promotion_id)
    return [{**record, "record_key": key} for key, record in reversed(ordered)]


def default_model(store: Store, catalog: Any = None) -> DefaultModel:
    """The store's default model: the newest promotion's, else the model shipped in the package."""
    history = promotions(store, catalog)
    if not history:
        return DefaultModel(DEMO_MODEL_URI, None, None, None)
    newest = history[0]
    model_id = str(newest["model_id"])
    return DefaultModel(model_uri(store, model_id), str(newest["model_checksum"]), model_id, newest)


def promote(store: Store, model_id: str, *, identity: Identity | None = None, comment: str = "") -> dict[str, Any]:
    """Make a registered model the store's default; return the promotion record.

    The model is loaded first (pinned to its record's checksum): a model whose files were
    changed in the store is never promoted.

    Raises
    ------
    PermissionDenied
        If ``identity`` (default :func:`~imaging_lib.identity.current_identity`) may not ``promote``.
    MissingRecord
        If the model is not registered.
    ModelChecksumMismatch
        If its files no longer match its record.
    """
    who = require("promote", identity).name
    model = load_registered_model(store, model_id)
    previous = default_model(store).model_id
    record = model_records.promotion_record(
        model_id, model_checksum=model.checksum, previous_model_id=previous, comment=comment, created_by=who
    )
    key = layout.promotion_record_key(model_records.new_promotion_id())
    store.create_json(key, record)
    return {**record, "record_key": key}


def ensure_default_model(store: Store, *, identity: Identity | None = None) -> DefaultModel:
    """Register the shipped demo model and make it the default, unless the store already has a default.

    ``make demo`` calls it, so the registry and the Models page start with the model the
    batch runs. A store with a promotion is left as it is.
    """
    if default_model(store).model_id is None:
        who = require("promote", identity)
        record = register_shipped_model(store, created_by=who.name)
        promote(store, record["model_id"], identity=who, comment="the shipped demo model (make demo)")
    return default_model(store)


def resolve_model(store: Store, uri: str | None = None) -> LoadedModel:
    """The model to run: the one at ``uri``, or the store's default (pinned) when ``uri`` is None."""
    return load_model(uri) if uri is not None else default_model(store).load()
