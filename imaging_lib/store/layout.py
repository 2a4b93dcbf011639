"""Where things live in a store: every key the platform writes is built and parsed here.

The layout::

    raw/<study_uid>/<series_uid>/<sop_uid>.dcm       de-identified DICOM
    volumes/<study_uid>/<series_uid>.nii.gz          the series as NIfTI
    records/studies/<study_uid>.json                 study record
    records/results/<study_uid>/<model_id>.json      prediction with provenance
    records/segmentations/<study_uid>/<seg_id>.json  quantification of a mask
    records/reports/<study_uid>/<report_name>.json   what a report was made from
    records/labels/<study_uid>/<version>.json        one version of a study's labels (never overwritten)
    records/exports/<study_uid>/<export_id>.json     DICOM objects exported, and where to
    records/jobs/<job_id>.json                       state of a job
    records/quarantine/<name>.json                   why an input was refused
    records/models/<model_id>.json                   a registered model: metrics, card, lineage
    records/promotions/<promotion_id>.json           who made which model the default, when (newest wins)
    records/cancellations/<job_id>.json              who asked a training job to stop
    records/retrievals/<series_digest>.json          an archive series retrieved (keyed hash of its original UIDs)
    config/deid_key_fingerprint.json                 fingerprint of the de-identification key
    explanations/<study_uid>/<model_id>.nii.gz       LIME heat map on the study's geometry
    segmentations/<study_uid>/<seg_id>.nii.gz        masks
    labels/<study_uid>/<mask_sha256>.nii.gz          label masks, addressed by their voxels' SHA-256
    reports/<study_uid>/<report_name>.<extension>    html, pdf, ipynb
    models/<model_id>/<file_name>                    a registered model's spec (model.json) and weights (model.pt)
    training/<job_id>/<trial_id>/checkpoint-<epoch>.pt   a trial's last checkpoint (torch, tensors only)
    training/<job_id>/<trial_id>/metrics.json        a trial's per-epoch metrics
    training/<job_id>/<trial_id>/tensorboard/<file>  TensorBoard event files (when tensorboard is installed)

Each kind of key is one :class:`KeyPattern`; :func:`build` assembles a key from its
fields and :func:`parse` takes one apart, so the two can never disagree. Keys are
validated by :mod:`imaging_lib.store.objects`; fields must be single key segments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "CANCELLATION_RECORDS",
    "EXPORT_RECORDS",
    "JOB_RECORDS",
    "KEY_PATTERNS",
    "LABEL_RECORDS",
    "LEGACY_DEID_SECRET_KEY",
    "MODEL_RECORDS",
    "MODEL_SPEC_FILE",
    "MODEL_WEIGHTS_FILE",
    "PROMOTION_RECORDS",
    "QUARANTINE_RECORDS",
    "RECORD_KINDS",
    "REPORT_RECORDS",
    "RESULT_RECORDS",
    "RETRIEVAL_RECORDS",
    "SEGMENTATION_RECORDS",
    "STUDY_RECORDS",
    "KeyPattern",
    "ParsedKey",
    "build",
    "cancellation_record_key",
    "checkpoint_key",
    "deid_key_fingerprint_key",
    "explanation_key",
    "export_record_key",
    "job_record_key",
    "label_mask_key",
    "label_record_key",
    "model_file_key",
    "model_record_key",
    "parse",
    "parse_as",
    "prefix",
    "promotion_record_key",
    "quarantine_record_key",
    "raw_key",
    "raw_prefix",
    "report_key",
    "report_prefix",
    "report_record_key",
    "result_record_key",
    "retrieval_record_key",
    "segmentation_key",
    "segmentation_record_key",
    "study_record_key",
    "tensorboard_key",
    "trial_metrics_key",
    "trial_prefix",
    "volume_key",
]

_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class KeyPattern:
    """One kind of key: a template such as ``"records/studies/{study_uid}.json"``.

    Attributes
    ----------
    kind : str
        The kind's name, e.g. ``"study_record"``.
    template : str
        Fixed text with ``{field}`` placeholders, each standing for one key segment
        (or the tail of one, before a fixed suffix).
    """

    kind: str
    template: str
    fields: tuple[str, ...] = field(init=False)
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(_FIELD.findall(self.template))
        pieces = _FIELD.split(self.template)
        regex = "".join(
            re.escape(piece) if index % 2 == 0 else f"(?P<{piece}>[^/]+?)" for index, piece in enumerate(pieces)
        )
        object.__setattr__(self, "fields", names)
        object.__setattr__(self, "_regex", re.compile(f"^{regex}$"))

    def build(self, **values: str) -> str:
        """The key of ``values`` (one per field).

        Raises
        ------
        ValueError
            If a field is missing, empty or holds a ``/``.
        """
        missing = sorted(set(self.fields) - set(values))
        if missing:
            raise ValueError(f"{self.kind} key needs {', '.join(missing)}")
        for name in self.fields:
            value = str(values[name])
            if not value or "/" in value:
                raise ValueError(f"{self.kind} key: {name} must be one non-empty key segment, not {value!r}")
        return self.template.format(**{name: str(values[name]) for name in self.fields})

    def match(self, key: str) -> dict[str, str] | None:
        """The fields of ``key`` if it is of this kind, else ``None``."""
        found = self._regex.match(key)
        return found.groupdict() if found else None

    @property
    def prefix(self) -> str:
        """The fixed start of every key of this kind (``"records/studies/"``)."""
        return self.template.split("{", 1)[0]


KEY_PATTERNS: tuple[KeyPattern, ...] = (
    KeyPattern("raw", "raw/{study_uid}/{series_uid}/{sop_uid}.dcm"),
    KeyPattern("volume", "volumes/{study_uid}/{series_uid}.nii.gz"),
    KeyPattern("study_record", "records/studies/{study_uid}.json"),
    KeyPattern("result_record", "records/results/{study_uid}/{model_id}.json"),
    KeyPattern("segmentation_record", "records/segmentations/{study_uid}/{seg_id}.json"),
    KeyPattern("report_record", "records/reports/{study_uid}/{report_name}.json"),
    KeyPattern("label_record", "records/labels/{study_uid}/{version}.json"),
    KeyPattern("export_record", "records/exports/{study_uid}/{export_id}.json"),
    KeyPattern("job_record", "records/jobs/{job_id}.json"),
    KeyPattern("quarantine_record", "records/quarantine/{name}.json"),
    KeyPattern("retrieval_record", "records/retrievals/{series_digest}.json"),
    KeyPattern("deid_key_fingerprint_record", "config/deid_key_fingerprint.json"),
    KeyPattern("legacy_deid_secret", "config/deid_secret"),
    KeyPattern("model_record", "records/models/{model_id}.json"),
    KeyPattern("promotion_record", "records/promotions/{promotion_id}.json"),
    KeyPattern("cancellation_record", "records/cancellations/{job_id}.json"),
    KeyPattern("explanation", "explanations/{study_uid}/{model_id}.nii.gz"),
    KeyPattern("segmentation", "segmentations/{study_uid}/{seg_id}.nii.gz"),
    KeyPattern("label_mask", "labels/{study_uid}/{mask_sha256}.nii.gz"),
    KeyPattern("report", "reports/{study_uid}/{report_name}.{extension}"),
    KeyPattern("model_file", "models/{model_id}/{file_name}"),
    KeyPattern("checkpoint", "training/{job_id}/{trial_id}/checkpoint-{epoch}.pt"),
    KeyPattern("trial_metrics", "training/{job_id}/{trial_id}/metrics.json"),
    KeyPattern("tensorboard_events", "training/{job_id}/{trial_id}/tensorboard/{event_file}"),
)
"""Every kind of key, most specific first (``parse`` takes the first that matches)."""

_BY_KIND = {pattern.kind: pattern for pattern in KEY_PATTERNS}

RECORD_KINDS = tuple(pattern.kind for pattern in KEY_PATTERNS if pattern.kind.endswith("_record"))
"""The kinds of JSON records (``study_record``, ``result_record``...)."""


@dataclass(frozen=True)
class ParsedKey:
    """A key taken apart: its kind and its fields (``parsed.study_uid``...)."""

    kind: str
    fields: dict[str, str]

    def __getattr__(self, name: str) -> str:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(f"a {self.kind} key has no {name}") from None


def build(kind: str, **values: str) -> str:
    """Return the key of ``kind`` made of ``values``; see :data:`KEY_PATTERNS`.

    Raises
    ------
    KeyError
        If ``kind`` is unknown.
    ValueError
        If a field is missing or not a single key segment.
    """
    return _BY_KIND[kind].build(**values)


def parse(key: str) -> ParsedKey | None:
    """Take ``key`` apart, or return ``None`` if it is not a key of the layout.

    Parameters
    ----------
    key : str
        A store key, e.g. ``"records/results/2.25.1/demo-abc.json"``.

    Returns
    -------
    ParsedKey or None
    """
    for pattern in KEY_PATTERNS:
        values = pattern.match(key)
        if values is not None:
            return ParsedKey(pattern.kind, values)
    return None


def parse_as(kind: str, key: str) -> ParsedKey:
    """Take apart ``key``, which must be of ``kind``.

    Raises
    ------
    ValueError
        If ``key`` is not a key of that kind.
    """
    parsed = parse(key)
    if parsed is None or parsed.kind != kind:
        raise ValueError(f"{key!r} is not a {kind} key")
    return parsed


def prefix(kind: str, **values: str) -> str:
    """The prefix that lists keys of ``kind``, narrowed by its leading fields.

    ``prefix("result_record")`` is ``"records/results/"``;
    ``prefix("result_record", study_uid="2.25.1")`` is ``"records/results/2.25.1/"``.

    Raises
    ------
    ValueError
        If the given fields are not the kind's leading fields, or a value is not one key segment.
    """
    pattern = _BY_KIND[kind]
    leading = pattern.fields[: len(values)]
    if set(values) != set(leading):
        raise ValueError(f"{kind} keys are listed by their leading fields {pattern.fields}, not {sorted(values)}")
    if not leading:
        return pattern.prefix
    last = "{" + leading[-1] + "}/"
    cut = pattern.template.find(last)
    if cut < 0:
        raise ValueError(f"{kind} keys cannot be listed by {leading[-1]}")
    for name in leading:
        if not values[name] or "/" in values[name]:
            raise ValueError(f"{kind} prefix: {name} must be one non-empty key segment, not {values[name]!r}")
    return pattern.template[: cut + len(last)].format(**values)


STUDY_RECORDS = _BY_KIND["study_record"].prefix
RESULT_RECORDS = _BY_KIND["result_record"].prefix
SEGMENTATION_RECORDS = _BY_KIND["segmentation_record"].prefix
REPORT_RECORDS = _BY_KIND["report_record"].prefix
LABEL_RECORDS = _BY_KIND["label_record"].prefix
EXPORT_RECORDS = _BY_KIND["export_record"].prefix
JOB_RECORDS = _BY_KIND["job_record"].prefix
QUARANTINE_RECORDS = _BY_KIND["quarantine_record"].prefix
RETRIEVAL_RECORDS = _BY_KIND["retrieval_record"].prefix
LEGACY_DEID_SECRET_KEY = build("legacy_deid_secret")
"""Where versions before the key file kept the de-identification key, inside the store (refused now)."""

MODEL_RECORDS = _BY_KIND["model_record"].prefix
PROMOTION_RECORDS = _BY_KIND["promotion_record"].prefix
CANCELLATION_RECORDS = _BY_KIND["cancellation_record"].prefix
MODEL_SPEC_FILE = "model.json"
"""File name of a registered model's spec in its folder ``models/<model_id>/``."""
MODEL_WEIGHTS_FILE = "model.pt"
"""File name of a registered model's weights, beside its spec."""


def raw_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
    """Key of one de-identified DICOM file."""
    return build("raw", study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)


def raw_prefix(study_uid: str, series_uid: str) -> str:
    """Prefix of the de-identified DICOM files of one series."""
    return prefix("raw", study_uid=study_uid, series_uid=series_uid)


def volume_key(study_uid: str, series_uid: str) -> str:
    """Key of a series stored as compressed NIfTI."""
    return build("volume", study_uid=study_uid, series_uid=series_uid)


def study_record_key(study_uid: str) -> str:
    """Key of a study's record."""
    return build("study_record", study_uid=study_uid)


def result_record_key(study_uid: str, model_id: str) -> str:
    """Key of the prediction record of one model on one study."""
    return build("result_record", study_uid=study_uid, model_id=model_id)


def segmentation_record_key(study_uid: str, seg_id: str) -> str:
    """Key of the record (seed, parameters, quantification) of one mask."""
    return build("segmentation_record", study_uid=study_uid, seg_id=seg_id)


def report_record_key(study_uid: str, report_name: str) -> str:
    """Key of the record of one report; ``study_uid`` is ``"cohort"`` for cohort reports."""
    return build("report_record", study_uid=study_uid, report_name=report_name)


def label_record_key(study_uid: str, version: str) -> str:
    """Key of one label version of a study (``v000003``, or a branch ``v000003-branch-1a2b3c4d``)."""
    return build("label_record", study_uid=study_uid, version=version)


def label_mask_key(study_uid: str, mask_sha256: str) -> str:
    """Key of a label mask, named by the SHA-256 of its voxels (one object however many versions use it)."""
    return build("label_mask", study_uid=study_uid, mask_sha256=mask_sha256)


def export_record_key(study_uid: str, export_id: str) -> str:
    """Key of the record of one export of a study's results as DICOM."""
    return build("export_record", study_uid=study_uid, export_id=export_id)


def job_record_key(job_id: str) -> str:
    """Key of a job's live record."""
    return build("job_record", job_id=job_id)


def quarantine_record_key(name: str) -> str:
    """Key of the record explaining why an input was quarantined."""
    return build("quarantine_record", name=name)


def retrieval_record_key(series_digest: str) -> str:
    """Key of the record of an archive series retrieved, named by the keyed hash of its original UIDs."""
    return build("retrieval_record", series_digest=series_digest)


def explanation_key(study_uid: str, model_id: str) -> str:
    """Key of the LIME heat map of one model on one study."""
    return build("explanation", study_uid=study_uid, model_id=model_id)


def segmentation_key(study_uid: str, seg_id: str) -> str:
    """Key of a mask on a study's geometry."""
    return build("segmentation", study_uid=study_uid, seg_id=seg_id)


def report_key(study_uid: str, report_name: str, extension: str) -> str:
    """Key of a report file; ``study_uid`` is ``"cohort"`` for cohort reports."""
    return build("report", study_uid=study_uid, report_name=report_name, extension=extension)


def report_prefix(study_uid: str) -> str:
    """Prefix of the report files of one study (or ``"cohort"``)."""
    return prefix("report", study_uid=study_uid)


def deid_key_fingerprint_key() -> str:
    """Key of the record holding the fingerprint of the store's de-identification key."""
    return build("deid_key_fingerprint_record")


def model_record_key(model_id: str) -> str:
    """Key of a registered model's record."""
    return build("model_record", model_id=model_id)


def model_file_key(model_id: str, file_name: str) -> str:
    """Key of a file of a registered model (:data:`MODEL_SPEC_FILE`, :data:`MODEL_WEIGHTS_FILE`)."""
    return build("model_file", model_id=model_id, file_name=file_name)


def promotion_record_key(promotion_id: str) -> str:
    """Key of one promotion of a model to the store's default (sortable id: the newest is the default)."""
    return build("promotion_record", promotion_id=promotion_id)


def cancellation_record_key(job_id: str) -> str:
    """Key of the request to stop a training job."""
    return build("cancellation_record", job_id=job_id)


def trial_prefix(job_id: str, trial_id: str) -> str:
    """Prefix of everything one trial of a training job writes (checkpoints, metrics, event files)."""
    return prefix("checkpoint", job_id=job_id, trial_id=trial_id)


def checkpoint_key(job_id: str, trial_id: str, epoch: int) -> str:
    """Key of a trial's checkpoint after ``epoch`` (1-based, zero-padded so keys sort by epoch)."""
    return build("checkpoint", job_id=job_id, trial_id=trial_id, epoch=f"{int(epoch):05d}")


def trial_metrics_key(job_id: str, trial_id: str) -> str:
    """Key of a trial's JSON metrics (one entry per epoch)."""
    return build("trial_metrics", job_id=job_id, trial_id=trial_id)


def tensorboard_key(job_id: str, trial_id: str, event_file: str) -> str:
    """Key of one TensorBoard event file of a trial."""
    return build("tensorboard_events", job_id=job_id, trial_id=trial_id, event_file=event_file)
