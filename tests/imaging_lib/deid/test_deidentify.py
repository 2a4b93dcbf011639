"""De-identification of real DICOM files: the Annex E table, keyed UIDs, shifted dates, file meta."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from imaging_lib import sample_data
from imaging_lib.deid.deidentify import (
    DATE_SHIFT_DAYS,
    IMPLEMENTATION_CLASS_UID,
    Pseudonymizer,
    deidentify,
)
from imaging_lib.errors import BurnedInAnnotation, UnreadableImage
from imaging_lib.io.dicom import read_dicom_bytes
from imaging_lib.io.dicom_dataset import dataset_to_bytes, parse_dicom
from support.phi import PHI, UNKNOWN_TAG, find_phi, write_phi_copies

SECRET = b"test-secret-0123456789abcdef"
UID_PATTERN = re.compile(r"2\.25\.[1-9][0-9]{0,38}")


@pytest.fixture(scope="module")
def phi_files(tmp_path_factory):
    sources = [sample_data.pydicom_file("CT_small.dcm"), sample_data.pydicom_file("MR_small.dcm")]
    return write_phi_copies(sources, tmp_path_factory.mktemp("phi"))


def _deid(path, secret=SECRET, **kwargs):
    return deidentify(parse_dicom(path.read_bytes(), str(path)), secret, source=str(path), **kwargs)


def test_phi_is_gone_from_the_output_bytes(phi_files):
    for path in phi_files:
        assert find_phi(path.read_bytes())  # the input does carry the PHI
        out = _deid(path)
        assert find_phi(dataset_to_bytes(out)) == []


def test_profile_actions_are_applied(phi_files):
    original = pydicom.dcmread(phi_files[0])
    out = _deid(phi_files[0])
    assert out.PatientName == out.PatientID and str(out.PatientID).startswith("ANON-")
    assert "PatientBirthDate" in out and not out.PatientBirthDate  # Z: present, empty
    assert "AccessionNumber" in out and not out.AccessionNumber  # Z
    assert "InstitutionName" not in out  # X/Z/D, not on the keep-list: removed (Type 3)
    assert "OtherPatientIDsSequence" not in out  # X
    assert "PatientAge" not in out and "PatientSex" in out and not out.PatientSex
    assert "ProcedureCodeSequence" not in out  # not on the keep-list: removed with its items
    assert out.ReferencedImageSequence[0].ReferencedSOPClassUID == original.SOPClassUID  # a kept sequence
    assert "TextValue" not in out.ReferencedImageSequence[0]  # ... whose items are cleaned
    assert not [element for element in out.iterall() if element.tag.is_private]
    assert out.Rows == original.Rows and out.PixelData == original.PixelData
    assert out.ImagePositionPatient == original.ImagePositionPatient


def test_deidentification_is_marked_and_file_meta_rewritten(phi_files):
    out = _deid(phi_files[1])
    assert out.PatientIdentityRemoved == "YES"
    assert [item.CodeValue for item in out.DeidentificationMethodCodeSequence] == ["113100", "113107"]
    assert all(item.CodingSchemeDesignator == "DCM" for item in out.DeidentificationMethodCodeSequence)
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    assert out.DeidentificationMethod
    back = pydicom.dcmread(pydicom.filebase.DicomBytesIO(dataset_to_bytes(out)))
    assert back.preamble == b"\0" * 128
    assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID
    assert back.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert back.file_meta.TransferSyntaxUID == pydicom.dcmread(phi_files[1]).file_meta.TransferSyntaxUID


def test_input_dataset_is_left_unchanged(phi_files):
    dataset = parse_dicom(phi_files[0].read_bytes(), "x")
    before = dataset_to_bytes(dataset)
    deidentify(dataset, SECRET)
    assert dataset_to_bytes(dataset) == before


def test_uids_are_keyed_deterministic_and_valid(phi_files):
    original = pydicom.dcmread(phi_files[0])
    first, again, other = _deid(phi_files[0]), _deid(phi_files[0]), _deid(phi_files[0], b"another-secret-0123456789")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        new = str(first.get(keyword))
        assert UID_PATTERN.fullmatch(new) and len(new) <= 64
        assert new != str(original.get(keyword))
        assert new == str(again.get(keyword))
        assert new != str(other.get(keyword))
    assert first.SOPClassUID == original.SOPClassUID  # class UIDs are not instance UIDs


def test_uid_is_not_an_unsalted_hash():
    keys = Pseudonymizer(SECRET)
    uid = keys.uid("1.2.3.4")
    plain = hashlib.sha256(b"1.2.3.4").digest()[:16]
    assert int(uid.removeprefix("2.25.")) != int.from_bytes(plain, "big")
    assert SECRET.decode() not in repr(keys) and "<hidden>" in repr(keys)


def test_references_inside_sequences_follow_the_new_uids(phi_files):
    target = pydicom.dcmread(phi_files[1])
    referring = parse_dicom(phi_files[0].read_bytes(), "x")
    item = Dataset()
    item.ReferencedSOPClassUID = target.SOPClassUID
    item.ReferencedSOPInstanceUID = target.SOPInstanceUID
    referring.ReferencedImageSequence = [item]
    out = deidentify(referring, SECRET)
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == _deid(phi_files[1]).SOPInstanceUID
    assert out.ReferencedImageSequence[0].ReferencedSOPClassUID == target.SOPClassUID


def test_dates_shift_per_patient_and_keep_intervals(phi_files):
    original = pydicom.dcmread(phi_files[0])
    out = _deid(phi_files[0])

    def day(value):
        return dt.datetime.strptime(str(value), "%Y%m%d").date()

    shift = (day(out.StudyDate) - day(original.StudyDate)).days
    assert -DATE_SHIFT_DAYS[1] <= shift <= -DATE_SHIFT_DAYS[0]
    assert (day(out.SeriesDate) - day(original.SeriesDate)).days == shift
    assert (day(out.StudyDate) - day(out.SeriesDate)) == (day(original.StudyDate) - day(original.SeriesDate))
    assert out.StudyTime == original.StudyTime  # times of day are kept under the modified-dates option
    same_patient = _deid(phi_files[1])  # both copies carry the same planted Patient ID
    assert same_patient.PatientID == out.PatientID
    assert (day(same_patient.StudyDate) - day(pydicom.dcmread(phi_files[1]).StudyDate)).days == shift


def test_pseudonym_and_shift_depend_on_the_secret():
    one, two = Pseudonymizer(SECRET), Pseudonymizer(b"another-secret-0123456789")
    assert one.patient_pseudonym("id:42") == one.patient_pseudonym("id:42")
    assert one.patient_pseudonym("id:42") != two.patient_pseudonym("id:42")
    shifts = {one.date_shift_days(f"id:{n}") for n in range(200)}
    assert len(shifts) > 100 and all(-3652 <= s <= -366 for s in shifts)


def test_table_action_comes_before_the_date_rule(phi_files):
    dataset = parse_dicom(phi_files[0].read_bytes(), "x")
    dataset.InstanceCoercionDateTime = "20240317101500"  # X, encoded as DT
    dataset.PatientBirthTime = "101500"  # X, encoded as TM
    out = deidentify(dataset, SECRET)
    assert "InstanceCoercionDateTime" not in out and "PatientBirthTime" not in out
    assert "PatientBirthDate" in out and out.PatientBirthDate in (None, "")  # Z: emptied, not shifted


def test_date_time_keeps_no_text_and_no_utc_offset(phi_files):
    original = pydicom.dcmread(phi_files[0])
    assert original.AcquisitionDateTime == PHI["DateTimeText"]
    dataset = parse_dicom(phi_files[0].read_bytes(), "x")
    dataset.ContentTime = "10:15:00"  # ACR-NEMA style: does not parse as TM
    dataset.SeriesDate = "2024-03-17"
    frame = Dataset()
    frame.FrameAcquisitionDateTime = "20240317101500.25+0100"
    group = Dataset()
    group.FrameContentSequence = [frame]
    dataset.PerFrameFunctionalGroupsSequence = [group]
    out = deidentify(dataset, SECRET)
    assert "AcquisitionDateTime" in out and out.AcquisitionDateTime in (None, "")  # issue 12's example, emptied
    assert out.ContentTime in (None, "") and out.SeriesDate in (None, "")
    shifted = str(out.PerFrameFunctionalGroupsSequence[0].FrameContentSequence[0].FrameAcquisitionDateTime)
    day = dt.datetime.strptime(shifted[:8], "%Y%m%d").date()
    shift = (
        dt.datetime.strptime(str(out.StudyDate), "%Y%m%d") - dt.datetime.strptime(original.StudyDate, "%Y%m%d")
    ).days
    assert shifted[8:] == "101500.25" and day == dt.date(2024, 3, 17) + dt.timedelta(days=shift)


def test_malformed_uids_are_not_quoted_in_warnings_or_logs(phi_files, caplog):
    dataset = parse_dicom(phi_files[0].read_bytes(), "x")
    dataset.StudyInstanceUID = "1.2.3.44444444444444"  # replaced below by a name of the same length
    data = dataset_to_bytes(dataset).replace(b"1.2.3.44444444444444", b"Gribblethorpe^Ulrika")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = deidentify(parse_dicom(data, "x"), SECRET)  # pydicom's decoding would warn, quoting the value
    assert UID_PATTERN.fullmatch(out.StudyInstanceUID)
    messages = [str(warning.message) for warning in caught] + [caplog.text]
    assert not [message for message in messages if "Gribblethorpe" in message]


def test_burned_in_annotation_is_refused_unless_allowed(phi_files):
    dataset = parse_dicom(phi_files[0].read_bytes(), "scan.dcm")
    dataset.BurnedInAnnotation = "YES"
    with pytest.raises(BurnedInAnnotation, match="scan.dcm"):
        deidentify(dataset, SECRET, source="scan.dcm")
    assert deidentify(dataset, SECRET, allow_burned_in=True).PatientIdentityRemoved == "YES"


@pytest.mark.parametrize(
    ("modality", "sop_class"),
    [
        ("US", "1.2.840.10008.5.1.4.1.1.6.1"),  # Ultrasound Image Storage
        ("OT", "1.2.840.10008.5.1.4.1.1.7"),  # Secondary Capture
        ("SC", "1.2.840.10008.5.1.4.1.1.7"),
        ("XC", "1.2.840.10008.5.1.4.1.1.77.1.4"),  # VL Photographic
        ("CT", "1.2.840.10008.5.1.4.1.1.7.2"),  # a secondary capture whatever its Modality says
        ("US", "1.2.840.10008.5.1.4.1.1.2"),  # an ultrasound whatever its SOP class says
    ],
)
def test_capture_images_without_burned_in_annotation_are_refused(phi_files, modality, sop_class):
    dataset = parse_dicom(phi_files[0].read_bytes(), "capture.dcm")
    dataset.Modality, dataset.SOPClassUID = modality, sop_class
    assert "BurnedInAnnotation" not in dataset
    with pytest.raises(BurnedInAnnotation, match="may carry burned-in text") as caught:
        deidentify(dataset, SECRET, source="capture.dcm")
    assert caught.value.source == "capture.dcm"
    assert deidentify(dataset, SECRET, allow_burned_in=True).Modality == modality  # the caller opts in
    dataset.BurnedInAnnotation = "NO"  # the modality says the pixels hold no text
    assert deidentify(dataset, SECRET).BurnedInAnnotation == "NO"


def test_real_secondary_capture_is_refused_without_opt_in():
    path = sample_data.pydicom_file("SC_rgb_rle.dcm")
    with pytest.raises(BurnedInAnnotation, match="may carry burned-in text"):
        deidentify(parse_dicom(path.read_bytes(), path.name), SECRET, source=path.name)


def test_short_secret_is_refused(phi_files):
    with pytest.raises(ValueError, match="16 bytes"):
        _deid(phi_files[0], secret=b"short")


def test_trailing_padding_is_not_carried(brain_files):
    data = brain_files[0].read_bytes()
    out = dataset_to_bytes(deidentify(parse_dicom(data, brain_files[0].name), SECRET))
    assert len(data) > 2_000_000 and len(out) < 200_000  # 2.5 MB of padding after the pixels is dropped
    assert pydicom.dcmread(pydicom.filebase.DicomBytesIO(out)).PixelData == pydicom.dcmread(brain_files[0]).PixelData


@pytest.mark.parametrize("name", ["MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm"])
def test_other_transfer_syntaxes_round_trip(name):
    path = sample_data.pydicom_file(name)
    # image_dfl.dcm is an OT image without BurnedInAnnotation: refused unless the caller opts in
    out = deidentify(parse_dicom(path.read_bytes(), name), SECRET, allow_burned_in=True)
    back = pydicom.dcmread(pydicom.filebase.DicomBytesIO(dataset_to_bytes(out)))
    assert back.PatientIdentityRemoved == "YES"
    assert back.file_meta.TransferSyntaxUID == pydicom.dcmread(path).file_meta.TransferSyntaxUID
    assert (back.pixel_array == pydicom.dcmread(path).pixel_array).all()


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "empty"), (b"not a dicom file at all" * 10, "not a DICOM"), (None, "truncated")],
)
def test_unreadable_bytes_are_typed_errors(data, reason):
    if data is None:
        data = sample_data.pydicom_file("MR_truncated.dcm").read_bytes()
    with pytest.raises(UnreadableImage, match=reason) as caught:
        parse_dicom(data, "upload.dcm")
    assert caught.value.source == "upload.dcm"


def test_planted_phi_helper_really_plants(phi_files):
    dataset = pydicom.dcmread(phi_files[0])
    assert dataset.PatientName == PHI["PatientName"]
    assert dataset.OtherPatientIDsSequence[0].PatientID == PHI["OtherPatientID"]
    assert any(element.value == PHI["Private"] for element in dataset if element.tag.is_private)
    assert dataset[UNKNOWN_TAG].value in (PHI["UnknownTag"], PHI["UnknownTag"].encode())
    nested = dataset.ScheduledProcedureStepSequence[0].RequestedProcedureCodeSequence[0]
    assert nested.AnatomicRegionSequence[0].TextValue == PHI["NestedText3"]
    assert set(find_phi(phi_files[0].read_bytes())) == set(PHI)  # every needle is in the input


def test_dataset_without_sop_instance_uid_is_a_typed_error():
    import pydicom

    from imaging_lib.deid.deidentify import deidentify
    from imaging_lib.errors import UnsupportedImage

    path = sample_data.pydicom_file("nested_priv_SQ.dcm")
    with pytest.raises(UnsupportedImage, match="SOPInstanceUID") as info:
        deidentify(pydicom.dcmread(path), "a" * 32, source=path.name)
    assert path.name in str(info.value)


def _enhanced_mr() -> bytes:
    """MR_small made into a 3-frame enhanced MR whose geometry, rescale and window live in functional groups."""
    dataset = pydicom.dcmread(sample_data.pydicom_file("MR_small.dcm"))
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"):
        delattr(dataset, keyword)
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR Image Storage
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.NumberOfFrames = 3
    dataset.PixelData = dataset.PixelData * 3
    shared = Dataset()
    shared.PlaneOrientationSequence = [Dataset()]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # sagittal
    shared.PixelMeasuresSequence = [Dataset()]
    shared.PixelMeasuresSequence[0].PixelSpacing = [0.5, 0.75]
    shared.PixelMeasuresSequence[0].SliceThickness = 2
    shared.PixelValueTransformationSequence = [Dataset()]
    shared.PixelValueTransformationSequence[0].RescaleIntercept = -100
    shared.PixelValueTransformationSequence[0].RescaleSlope = 2
    shared.PixelValueTransformationSequence[0].RescaleType = "US"
    shared.FrameVOILUTSequence = [Dataset()]
    shared.FrameVOILUTSequence[0].WindowCenter = 600
    shared.FrameVOILUTSequence[0].WindowWidth = 1600
    shared.FrameVOILUTSequence[0].WindowCenterWidthExplanation = "Dr Crabtree's window"
    dataset.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for index in range(3):
        frame = Dataset()
        frame.PlanePositionSequence = [Dataset()]
        frame.PlanePositionSequence[0].ImagePositionPatient = [-10 + 2 * index, -80, 90]
        frame.FrameContentSequence = [Dataset()]
        frame.FrameContentSequence[0].InStackPositionNumber = index + 1
        frame.FrameContentSequence[0].DimensionIndexValues = [1, index + 1]
        frame.FrameContentSequence[0].FrameAcquisitionDateTime = f"2024031710150{index}"
        frame.FrameContentSequence[0].FrameComments = "Quixbottom moved"
        frames.append(frame)
    dataset.PerFrameFunctionalGroupsSequence = frames
    return dataset_to_bytes(dataset)


def test_enhanced_functional_groups_survive_and_geometry_reads_identically():
    data = _enhanced_mr()
    out = deidentify(parse_dicom(data, "enhanced.dcm"), SECRET)
    clean = dataset_to_bytes(out)
    before, after = read_dicom_bytes([("enhanced.dcm", data)]), read_dicom_bytes([("enhanced.dcm", clean)])
    assert before.shape == (64, 64, 3)
    assert np.array_equal(before.array, after.array) and np.allclose(before.affine, after.affine)
    shared = out.SharedFunctionalGroupsSequence[0]
    assert shared.PixelValueTransformationSequence[0].RescaleSlope == 2
    assert shared.PixelValueTransformationSequence[0].RescaleType == "US"
    assert shared.FrameVOILUTSequence[0].WindowWidth == 1600
    assert "WindowCenterWidthExplanation" not in shared.FrameVOILUTSequence[0]
    content = [frame.FrameContentSequence[0] for frame in out.PerFrameFunctionalGroupsSequence]
    assert [item.InStackPositionNumber for item in content] == [1, 2, 3]
    assert all("FrameComments" not in item for item in content) and b"Quixbottom" not in clean
    assert [item.FrameAcquisitionDateTime[8:] for item in content] == ["101500", "101501", "101502"]
    assert content[0].FrameAcquisitionDateTime[:8] != "20240317"  # shifted
