"""TID 1500 measurement reports: read back with highdicom, every number and code checked against the store."""

from __future__ import annotations

import io

import highdicom as hd
import pydicom
import pytest
from pydicom.sr.codedict import codes

from imaging_lib.errors import NothingToExport
from imaging_lib.interop.seg import build_segmentation
from imaging_lib.interop.sources import source_series_for
from imaging_lib.interop.sr import MaskMeasurements, PredictionFinding, build_measurement_report
from imaging_lib.io.dicom_dataset import dataset_to_bytes
from support.phi import find_phi

STATISTICS = {"Mean": "intensity_mean", "Standard Deviation": "intensity_std", "Minimum": "intensity_min"}


def _report(results_store, name):
    store, study = results_store.store, results_store.study(name)
    mask_record = results_store.masks[name]
    mask = store.read_volume(mask_record["mask_key"])
    source = source_series_for(store, study, mask, mask_record["mask_key"])
    seg = build_segmentation(source, mask, mask_record, record_key=mask_record["record_key"])
    result = results_store.results[name]
    document = build_measurement_report(
        study["study_uid"],
        [MaskMeasurements(mask_record["record_key"], mask_record, seg, source)],
        [PredictionFinding(result["record_key"], result, source)],
    )
    data = dataset_to_bytes(document)
    return data, hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(io.BytesIO(data))), seg, source


def _texts(group, concept) -> list[str]:
    return [item.TextValue for item in hd.sr.utils.find_content_items(group[0], name=concept, recursive=True)]


@pytest.mark.parametrize(
    ("name", "concept", "unit"),
    [
        ("brain", codes.DCM.MRSignalIntensity, codes.UCUM.ArbitraryUnit),
        ("ct", codes.DCM.AttenuationCoefficient, codes.UCUM.HounsfieldUnit),
    ],
)
def test_each_mask_is_a_volumetric_group_with_its_volume_and_intensities(results_store, name, concept, unit):
    data, report, seg, _ = _report(results_store, name)
    quantification = results_store.masks[name]["quantification"]
    (group,) = report.content.get_volumetric_roi_measurement_groups()
    assert group.referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    assert group.referenced_segment.referenced_segment_numbers == [1]
    assert group.tracking_identifier == results_store.masks[name]["seg_id"]
    (volume,) = group.get_measurements(name=codes.SCT.Volume)
    assert volume.value == pytest.approx(quantification["volume_ml"], rel=1e-6)
    assert (volume.unit.value, volume.unit.scheme_designator) == ("mL", "UCUM")
    intensities = {m.derivation.meaning: m for m in group.get_measurements(name=concept)}
    for meaning, field in STATISTICS.items():
        assert intensities[meaning].value == pytest.approx(quantification[field], rel=1e-6)
        assert intensities[meaning].unit == unit
    assert _texts(group, codes.DCM.AlgorithmName) == ["imaging_lib.science.segment.grow_region"]
    assert find_phi(data) == []


def test_the_prediction_is_a_finding_with_its_probability_model_and_checksum(results_store):
    _, report, _, source = _report(results_store, "brain")
    result = results_store.results["brain"]
    (group,) = report.content.get_image_measurement_groups()
    assert (group.finding_type.value, group.finding_type.scheme_designator) == (result["label"], "99IMGLAB")
    (probability,) = group.get_measurements(name=codes.DCM.Probability)
    assert probability.value == pytest.approx(result["probability"], rel=1e-6)
    assert probability.unit == codes.UCUM.NoUnits
    assert _texts(group, codes.DCM.AlgorithmName) == [result["model_id"]]
    assert _texts(group, codes.DCM.AlgorithmVersion) == [result["model_checksum"]]
    (image,) = group.source_images
    assert image.referenced_sop_instance_uid == source.images[result["most_suspicious_slice"]].SOPInstanceUID


def test_the_report_lists_its_evidence_and_declares_its_local_codes(results_store):
    _, report, seg, source = _report(results_store, "brain")
    evidence = {
        str(instance.ReferencedSOPInstanceUID)
        for study in report.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for instance in series.ReferencedSOPSequence
    }
    assert evidence == {str(seg.SOPInstanceUID), *(str(image.SOPInstanceUID) for image in source.images)}
    assert [item.CodingSchemeDesignator for item in report.CodingSchemeIdentificationSequence] == ["99IMGLAB"]
    assert report.PatientIdentityRemoved == "YES" and report.StudyInstanceUID == results_store.uids["brain"]
    assert report.CompletionFlag == "COMPLETE"


def test_a_report_of_nothing_is_refused():
    with pytest.raises(NothingToExport):
        build_measurement_report("2.25.1", [], [])
