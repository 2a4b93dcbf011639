"""A study's measurements and prediction as one DICOM SR, TID 1500 Measurement Report (highdicom).

:func:`build_measurement_report` makes one Comprehensive 3D SR per study holding:

* for each saved mask, a Volumetric ROI group (TID 1411) that references its segment in
  the exported SEG, with the quantification of its record: volume (SCT 118565006, in
  ``mL``) and the mean, standard deviation, minimum and maximum intensity inside it
  (SCT derivations Mean, Standard Deviation, Minimum, Maximum), as attenuation coefficient
  in Hounsfield units (DCM 112031, ``[hnsf'U]``) for CT, MR signal intensity (DCM 110852,
  arbitrary units ``[arb'U]``) for MR, and a local "image intensity" concept without units
  otherwise;
* for each prediction, a Measurement group (TID 1501) on the most suspicious slice's
  source image (the whole series when the model slices along another axis): the finding
  type (DCM 121071 "Finding") coded as the predicted class name in the local scheme
  ``99IMGLAB``, and the probability (DCM 122157, unit ``1``) of the model's positive class
  for the study: its score, the slice probabilities aggregated by the model's decision
  rule; the algorithm is the model id, its version the model checksum (spec and weights).

The observer is this library as a device; the evidence lists every source image and SEG
it references, so a viewer finds them in the same study.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._version import __version__
from ..errors import NothingToExport
from .provenance import (
    EQUIPMENT,
    SERIES_NUMBERS,
    export_uid,
    local_code,
    local_coding_scheme,
    mark_deidentified,
    quiet_highdicom,
)
from .seg import SEGMENT_NUMBER
from .sources import SourceSeries

__all__ = ["MaskMeasurements", "PredictionFinding", "build_measurement_report", "intensity_concept"]

_STATISTICS = (
    ("intensity_mean", "Mean"),
    ("intensity_std", "StandardDeviation"),
    ("intensity_min", "Minimum"),
    ("intensity_max", "Maximum"),
)


@dataclass(frozen=True)
class MaskMeasurements:
    """One saved mask: its record, its exported SEG and the series it lies on."""

    record_key: str
    record: Mapping[str, Any]
    segmentation: Any
    source: SourceSeries


@dataclass(frozen=True)
class PredictionFinding:
    """One prediction: its result record and the series it was computed on."""

    record_key: str
    record: Mapping[str, Any]
    source: SourceSeries


def _millilitre() -> Any:
    from pydicom.sr.coding import Code

    return Code("mL", "UCUM", "milliliter")


def intensity_concept(units: str, modality: str) -> tuple[Any, Any]:
    """The (concept, unit) of intensities measured in a mask: HU for CT, arbitrary for MR.

    Parameters
    ----------
    units : str
        The quantification's ``units`` (the series' Rescale Type, ``"HU"`` for CT).
    modality : str
        The source series' Modality.
    """
    from pydicom.sr.codedict import codes

    if units.upper() == "HU":
        return codes.DCM.AttenuationCoefficient, codes.UCUM.HounsfieldUnit
    if modality.upper() == "MR":
        return codes.DCM.MRSignalIntensity, codes.UCUM.ArbitraryUnit
    return local_code("INTENSITY", "Image intensity"), codes.UCUM.NoUnits


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _referenced_segment(entry: MaskMeasurements) -> Any:
    """The SEG's segment and the source images its frames are derived from.

    (``ReferencedSegment.from_segmentation`` expects the segment's identification in every
    frame; highdicom itself moves it to the shared functional groups when there is one.)
    """
    import highdicom as hd

    segmentation = entry.segmentation
    derived_from = {
        str(image.ReferencedSOPInstanceUID)
        for frame in segmentation.PerFrameFunctionalGroupsSequence
        for derivation in frame.get("DerivationImageSequence", [])
        for image in derivation.get("SourceImageSequence", [])
    }
    images = [image for image in entry.source.images if str(image.SOPInstanceUID) in derived_from]
    return hd.sr.ReferencedSegment(
        sop_class_uid=str(segmentation.SOPClassUID),
        sop_instance_uid=str(segmentation.SOPInstanceUID),
        segment_number=SEGMENT_NUMBER,
        source_images=[hd.sr.SourceImageForSegmentation.from_source_image(image) for image in images] or None,
        source_series=None if images else hd.sr.SourceSeriesForSegmentation(entry.source.series_uid),
    )


def _mask_group(entry: MaskMeasurements) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    record = entry.record
    quantification = record.get("quantification") or {}
    provenance = record.get("provenance") or {}
    algorithm = hd.sr.AlgorithmIdentification(
        name=str(record.get("method") or "imaging_lib")[:64],
        version=str(provenance.get("library_version") or __version__)[:64],
    )
    measurements = []
    volume = _number(quantification.get("volume_ml"))
    if volume is not None:
        measurements.append(hd.sr.Measurement(name=codes.SCT.Volume, value=volume, unit=_millilitre()))
    concept, unit = intensity_concept(
        str(quantification.get("units") or ""), str(entry.source.images[0].get("Modality", ""))
    )
    for field, derivation in _STATISTICS:
        value = _number(quantification.get(field))
        if value is not None:
            measurements.append(
                hd.sr.Measurement(name=concept, value=value, unit=unit, derivation=getattr(codes.SCT, derivation))
            )
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            identifier=str(record.get("seg_id", "region"))[:64],
            uid=export_uid("tracking", entry.source.study_uid, entry.record_key),
        ),
        referenced_segment=_referenced_segment(entry),
        finding_type=codes.SCT.Tissue,
        algorithm_id=algorithm,
        measurements=measurements,
    )


def _prediction_group(entry: PredictionFinding) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    record = entry.record
    explanation = record.get("explanation") or {}
    slice_index = record.get("most_suspicious_slice")
    on_acquired_slice = int(explanation.get("slice_axis", 2)) == 2 and slice_index is not None
    images = list(entry.source.images)
    if on_acquired_slice and 0 <= int(str(slice_index)) < len(images):
        images = [images[int(str(slice_index))]]
    label = str(record.get("label", ""))
    algorithm = hd.sr.AlgorithmIdentification(
        name=str(record.get("model_id", "model"))[:64],
        version=str(record.get("model_checksum", ""))[:64] or "unknown",
        parameters=[f"threshold={record.get('threshold')}", f"class_names={','.join(record.get('class_names', []))}"],
    )
    probability = _number(record.get("probability"))
    measurements = (
        [hd.sr.Measurement(name=codes.DCM.Probability, value=probability, unit=codes.UCUM.NoUnits)]
        if probability is not None
        else []
    )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            identifier=f"prediction {record.get('model_id', '')}"[:64],
            uid=export_uid("tracking", entry.source.study_uid, entry.record_key),
        ),
        algorithm_id=algorithm,
        finding_type=local_code(label, label or "no label"),
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(image) for image in images],
        measurements=measurements,
    )


def _unique(datasets: Sequence[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for dataset in datasets:
        seen.setdefault(str(dataset.SOPInstanceUID), dataset)
    return list(seen.values())


def build_measurement_report(
    study_uid: str,
    masks: Sequence[MaskMeasurements],
    predictions: Sequence[PredictionFinding],
) -> Any:
    """Make the study's TID 1500 measurement report.

    Parameters
    ----------
    study_uid : str
        The study (de-identified UID).
    masks : sequence of MaskMeasurements
        Saved masks with their exported SEG.
    predictions : sequence of PredictionFinding
        Result records.

    Returns
    -------
    highdicom.sr.Comprehensive3DSR

    Raises
    ------
    NothingToExport
        If there is neither a mask nor a prediction.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not masks and not predictions:
        raise NothingToExport(study_uid, "no saved mask or prediction to report")
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=export_uid("device"),
            name="imaging-lab",
            manufacturer_name=EQUIPMENT["manufacturer"],
            model_name=EQUIPMENT["manufacturer_model_name"],
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=[*(_mask_group(m) for m in masks), *(_prediction_group(p) for p in predictions)],
        title=codes.DCM.ImagingMeasurementReport,
    )
    entries: list[MaskMeasurements | PredictionFinding] = [*masks, *predictions]
    sources = [image for entry in entries for image in entry.source.images]
    evidence = _unique([*sources, *(m.segmentation for m in masks)])
    made_of = sorted(
        f"{entry.record_key}@{(entry.record.get('provenance') or {}).get('created_at', '')}" for entry in entries
    )
    with quiet_highdicom():
        document = hd.sr.Comprehensive3DSR(
            evidence=evidence,
            content=report,
            series_instance_uid=export_uid("sr", study_uid, "series"),
            series_number=SERIES_NUMBERS["sr"],
            sop_instance_uid=export_uid("sr", study_uid, *made_of),
            instance_number=1,
            is_complete=True,
            series_description="imaging-lab measurements",
            coding_schemes=[local_coding_scheme()],
            **EQUIPMENT,
        )
    return mark_deidentified(document, sources[0])
