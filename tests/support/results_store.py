"""A store holding real studies with results to export: masks, predictions and LIME heat maps.

:func:`build_results_store` copies papaya's brain MR series (oblique, 20 slices) and
pydicom's ``CT_small.dcm`` and ``MR_small.dcm`` with the planted PHI of
:mod:`support.phi`, ingests the copies the normal way (de-identified), grows and saves
one region on the brain and one on the CT, and predicts and explains the brain and the CT
with the shipped demo model (:func:`imaging_lib.jobs.batch.process_study`, LIME with 64
samples to stay cheap). The MR_small study keeps no result: nothing to export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imaging_lib import sample_data
from imaging_lib.ingestion.batch import ingest
from imaging_lib.jobs.batch import process_study
from imaging_lib.models import DEMO_MODEL_URI, load_model
from imaging_lib.science.segment import grow_region, quantify, save_segmentation
from imaging_lib.store import layout, records
from imaging_lib.store.objects import Store
from support.phi import write_phi_copies

__all__ = ["SEEDS", "ResultsStore", "build_results_store"]

SEEDS = {"brain": ((128, 128, 10), 1.0), "ct": ((42, 64, 0), 2.0)}
"""Seed voxel and tolerance (standard deviations) of the region grown on each study."""


@dataclass(frozen=True)
class ResultsStore:
    """The store, the PHI-bearing copies it was ingested from, and what is in it."""

    store: Store
    phi_files: dict[str, list[Path]]
    uids: dict[str, str]
    masks: dict[str, dict]
    results: dict[str, dict]

    def study(self, name: str) -> dict:
        return records.read_record(self.store, layout.study_record_key(self.uids[name]))


def build_results_store(folder: Path) -> ResultsStore:
    """Build the store in ``folder`` (see the module docstring)."""
    phi_files = {
        "brain": write_phi_copies(sample_data.brain_series(), folder / "phi" / "brain"),
        "ct": write_phi_copies([sample_data.pydicom_file("CT_small.dcm")], folder / "phi" / "ct"),
        "mr": write_phi_copies([sample_data.pydicom_file("MR_small.dcm")], folder / "phi" / "mr"),
    }
    store = Store(folder / "store")
    summary = ingest([path for paths in phi_files.values() for path in paths], store, progress=False)
    assert not summary.quarantined, summary.quarantined
    by_source = {str(entry["source"]): entry["study_uid"] for entry in summary.ingested}
    uids = {name: by_source[str(paths[0])] for name, paths in phi_files.items()}
    masks, results = {}, {}
    model = load_model(DEMO_MODEL_URI)
    for name, (seed, tolerance) in SEEDS.items():
        study = records.read_record(store, layout.study_record_key(uids[name]))
        volume = store.read_volume(study["volume_key"])
        mask = grow_region(volume, seed, tolerance=tolerance, smoothing_sigma_mm=1.0)
        masks[name] = save_segmentation(
            store, uids[name], mask, quantify(volume, mask), mask.metadata["seed_ijk"], mask.metadata["parameters"]
        )
        summary = process_study(
            uids[name], store, DEMO_MODEL_URI, {"num_samples": 64, "batch_size": 16}, model_checksum=model.checksum
        )
        results[name] = {**records.read_record(store, summary["result_key"]), "record_key": summary["result_key"]}
    return ResultsStore(store, phi_files, uids, masks, results)
