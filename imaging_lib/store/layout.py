"""Where things live in a store: every key the library writes is built here.

The layout (see ``DESIGN.md``)::

    raw/<study_uid>/<series_uid>/<sop_uid>.dcm   de-identified DICOM
    volumes/<study_uid>/<series_uid>.nii.gz      the series as NIfTI
    records/studies/<study_uid>.json             catalog record of a study
    records/results/<study_uid>/<model_id>.json  prediction with provenance
    records/segmentations/<study_uid>/<seg_id>.json  quantification of a mask
    records/jobs/<job_id>.json                   state of a batch job
    records/quarantine/<name>.json               why an input was refused
    explanations/<study_uid>/<model_id>.nii.gz   LIME heat map on the study's geometry
    segmentations/<study_uid>/<seg_id>.nii.gz    masks
    reports/<study_uid>/<report_name>.<ext>      html, pdf, ipynb
    quarantine/<name>                            refused input bytes (never PHI-bearing DICOM)

Keys are validated by :mod:`imaging_lib.store`; these functions only assemble them.
"""

from __future__ import annotations

__all__ = [
    "JOB_RECORDS",
    "QUARANTINE_RECORDS",
    "RESULT_RECORDS",
    "SEGMENTATION_RECORDS",
    "STUDY_RECORDS",
    "explanation_key",
    "job_record_key",
    "quarantine_record_key",
    "raw_key",
    "report_key",
    "result_record_key",
    "segmentation_key",
    "segmentation_record_key",
    "study_record_key",
    "volume_key",
]

STUDY_RECORDS = "records/studies/"
RESULT_RECORDS = "records/results/"
SEGMENTATION_RECORDS = "records/segmentations/"
JOB_RECORDS = "records/jobs/"
QUARANTINE_RECORDS = "records/quarantine/"


def raw_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
    """Key of one de-identified DICOM file."""
    return f"raw/{study_uid}/{series_uid}/{sop_uid}.dcm"


def volume_key(study_uid: str, series_uid: str) -> str:
    """Key of a series stored as compressed NIfTI."""
    return f"volumes/{study_uid}/{series_uid}.nii.gz"


def study_record_key(study_uid: str) -> str:
    """Key of a study's catalog record."""
    return f"{STUDY_RECORDS}{study_uid}.json"


def result_record_key(study_uid: str, model_id: str) -> str:
    """Key of the prediction record of one model on one study."""
    return f"{RESULT_RECORDS}{study_uid}/{model_id}.json"


def segmentation_record_key(study_uid: str, seg_id: str) -> str:
    """Key of the record (seed, parameters, quantification) of one mask."""
    return f"{SEGMENTATION_RECORDS}{study_uid}/{seg_id}.json"


def job_record_key(job_id: str) -> str:
    """Key of a job's live record."""
    return f"{JOB_RECORDS}{job_id}.json"


def quarantine_record_key(name: str) -> str:
    """Key of the record explaining why an input was quarantined."""
    return f"{QUARANTINE_RECORDS}{name}.json"


def explanation_key(study_uid: str, model_id: str) -> str:
    """Key of the LIME heat map of one model on one study."""
    return f"explanations/{study_uid}/{model_id}.nii.gz"


def segmentation_key(study_uid: str, seg_id: str) -> str:
    """Key of a mask on a study's geometry."""
    return f"segmentations/{study_uid}/{seg_id}.nii.gz"


def report_key(study_uid: str, report_name: str, extension: str) -> str:
    """Key of a report; ``study_uid`` is ``"cohort"`` for cohort reports."""
    return f"reports/{study_uid}/{report_name}.{extension}"
