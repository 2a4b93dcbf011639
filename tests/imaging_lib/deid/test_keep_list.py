"""The keep-list: what it keeps, why, how Table E.1-1 governs it, and what it removes (issue 12's examples)."""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from imaging_lib import sample_data
from imaging_lib.deid import keep_list
from imaging_lib.deid.deidentify import deidentify
from imaging_lib.deid.keep_list import DATES, KEEP_LIST, PSEUDONYM, KeepListError, Kept, plan
from imaging_lib.deid.profile import BASIC_PROFILE
from imaging_lib.io.dicom_dataset import dataset_to_bytes, parse_dicom

SECRET = b"test-secret-0123456789abcdef"
LIBRARY = Path(__file__).resolve().parents[3] / "imaging_lib"
READERS = ["io/dicom.py", "ingestion/batch.py", "science/preprocess.py"]
READ_BUT_NOT_KEPT = {
    "SeriesDescription": "Basic Profile X; the Clean Descriptors option (113105) is not implemented",
    "TransferSyntaxUID": "file meta, rebuilt by deidentify",
}


def _ct() -> Dataset:
    path = sample_data.pydicom_file("CT_small.dcm")
    return parse_dicom(path.read_bytes(), path.name)


def _all_tags(dataset) -> set[int]:
    return {int(element.tag) for element in dataset.iterall()}


def test_every_entry_is_a_dictionary_attribute_with_a_reason():
    rules = plan()
    assert len(rules) == len(KEEP_LIST)
    for entry in KEEP_LIST:
        assert tag_for_keyword(entry.keyword) == entry.tag
        assert entry.reason.strip()
    assert all(rule.action in {"K", "C", "D", "Z", "U"} for rule in rules.values())


def test_what_the_readers_read_is_kept():
    """A reader that starts reading a new attribute fails here until the keep-list is reviewed."""
    kept = {rule.keyword for rule in plan().values()}
    for module in READERS:
        source = (LIBRARY / module).read_text(encoding="utf-8")
        words = set(re.findall(r"[\"']([A-Z][A-Za-z]+)[\"']", source)) | set(
            re.findall(r"\.([A-Z][A-Za-z]+)\b", source)
        )
        read = {word for word in words if tag_for_keyword(word) is not None}
        assert read - kept - set(READ_BUT_NOT_KEPT) == set(), module
    for keyword in ("PixelValueTransformationSequence", "FrameVOILUTSequence", "ModalityLUTSequence", "LUTData"):
        assert keyword in kept  # rescale, window and modality LUTs the readers are growing to use


def test_table_actions_govern_kept_attributes():
    rules = plan()
    by_keyword = {rule.keyword: rule for rule in rules.values()}
    assert by_keyword["PatientBirthDate"].action == "Z"  # the table's Z, not a shifted date
    assert by_keyword["StudyDate"].action == "C" and by_keyword["StudyDate"].table == "Z"  # option 113107
    assert by_keyword["PatientID"].action == "D" and by_keyword["PatientID"].treatment == PSEUDONYM
    assert by_keyword["ReferencedImageSequence"].action == "K"  # X/Z/U*: kept, items cleaned
    for rule in rules.values():
        assert rule.table != "X"
        if rule.vr == "UI":
            assert rule.action == "U"  # every kept UID, listed in the table or not
        if rule.action == "C":
            assert rule.vr in ("DA", "DT", "TM") and rule.treatment == DATES


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (Kept(0x00080081, "InstitutionAddress", "test"), "removes it"),  # X
        (Kept(0x00080080, "InstitutionName", "test"), "dummy value"),  # X/Z/D: this library keeps no dummies
        (Kept(0x00080015, "InstanceCoercionDateTime", "test", DATES), "removes it"),  # X, even as a date
        (Kept(0x00080080, "InstitutionName", "test", DATES), "dates and times"),
        (Kept(0x00080081, "InstitutionAddress", "test", PSEUDONYM), "removes it"),
        (Kept(0x00400555, "AcquisitionContextSequence", "test"), "never emptied"),  # X/Z on a sequence
        (Kept(0x00100020, "OtherPatientIDs", "test"), "wrong tag"),
        (Kept(0x00080060, "Modality", "test"), "listed twice"),
    ],
)
def test_a_keep_list_against_the_table_is_refused(monkeypatch, entry, message):
    monkeypatch.setattr(keep_list, "KEEP_LIST", (*KEEP_LIST, entry))
    plan.cache_clear()
    try:
        with pytest.raises(KeepListError, match=message):
            plan()
    finally:
        monkeypatch.undo()
        plan.cache_clear()


def test_output_holds_only_kept_attributes_at_every_depth():
    out = deidentify(_ct(), SECRET)
    assert _all_tags(out) <= set(plan())
    assert int(tag_for_keyword("PixelData")) in _all_tags(out)


def _nested(depth: int, leaf: Dataset, keyword: str = "RequestedProcedureCodeSequence") -> Dataset:
    """An item holding ``leaf`` ``depth - 1`` sequences further down."""
    item = leaf
    for _ in range(depth - 1):
        outer = Dataset()
        setattr(outer, keyword, [item])
        item = outer
    return item


def _text(value: str) -> Dataset:
    item = Dataset()
    item.TextValue = value
    return item


def _attribute(keyword: str, value):
    return lambda dataset: setattr(dataset, keyword, value)


def _element(tag: int, vr: str, value):
    return lambda dataset: dataset.add_new(tag, vr, value)


def _in_sequence(keyword: str, item: Dataset):
    return lambda dataset: setattr(dataset, keyword, [item])


def _item(**attributes) -> Dataset:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def _in_functional_groups(leaf: Dataset) -> Dataset:
    return _item(FrameContentSequence=[leaf])  # PerFrameFunctionalGroupsSequence > FrameContentSequence > leaf


# Each issue 12 example: (what, how it is planted, the tag that must be gone, the planted text).
ISSUE_EXAMPLES = [
    (
        "Comments on the Scheduled Procedure Step",
        _attribute("CommentsOnTheScheduledProcedureStep", "CMT-Hollingsworth"),
        0x00400400,
        "CMT-Hollingsworth",
    ),
    (
        "alternative-calendar birth date",
        _attribute("PatientBirthDateInAlternativeCalendar", "ALTB-13560814"),
        0x00100033,
        "ALTB-13560814",
    ),
    (
        "alternative-calendar death date",
        _attribute("PatientDeathDateInAlternativeCalendar", "ALTD-14010203"),
        0x00100034,
        "ALTD-14010203",
    ),
    (
        "issuer of patient ID qualifiers",
        _in_sequence("IssuerOfPatientIDQualifiersSequence", _item(UniversalEntityID="UEID-Hospital-77")),
        0x00100024,
        "UEID-Hospital-77",
    ),
    (
        "issuer of accession number",
        _in_sequence("IssuerOfAccessionNumberSequence", _item(LocalNamespaceEntityID="ACCISSUER-91")),
        0x00080051,
        "ACCISSUER-91",
    ),
    (
        "order placer identifier",
        _in_sequence("OrderPlacerIdentifierSequence", _item(LocalNamespaceEntityID="PLACER-5512")),
        0x00400026,
        "PLACER-5512",
    ),
    (
        "order filler identifier",
        _in_sequence("OrderFillerIdentifierSequence", _item(UniversalEntityID="FILLER-5513")),
        0x00400027,
        "FILLER-5513",
    ),
    ("an unknown even-group tag", _element(0x22222222, "LO", "UNKNOWN-Quixbottom"), 0x22222222, "UNKNOWN-Quixbottom"),
    (
        "Variable Pixel Data (7F00,0010)",
        _element(0x7F000010, "OW", b"VARPIXEL-Quixbottom!"),
        0x7F000010,
        "VARPIXEL-Quixbottom",
    ),
    (
        "Performed Procedure Type Description",
        _attribute("PerformedProcedureTypeDescription", "PPTD-Quixbottom"),
        0x00400255,
        "PPTD-Quixbottom",
    ),
    ("Intervention Drug Name", _attribute("InterventionDrugName", "DRUG-Zyquorafen"), 0x00180034, "DRUG-Zyquorafen"),
    ("overlay data (60xx)", _element(0x60003000, "OW", b"OVERLAY-Quixbottom!"), 0x60003000, "OVERLAY-Quixbottom"),
    ("overlay comments (60xx)", _element(0x60024000, "LT", "OVLCMT-Quixbottom"), 0x60024000, "OVLCMT-Quixbottom"),
    ("curve data (50xx)", _element(0x50003000, "OW", b"CURVE-Quixbottom"), 0x50003000, "CURVE-Quixbottom"),
    (
        "private attribute",
        lambda d: d.private_block(0x0029, "ACME 1.0", create=True).add_new(0x10, "LO", "PRIV-Quixbottom"),
        0x00291010,
        "PRIV-Quixbottom",
    ),
    (
        "TextValue two deep in unlisted sequences",
        _in_sequence("ScheduledProcedureStepSequence", _nested(2, _text("TEXT2-Ambrosius"))),
        0x0040A160,
        "TEXT2-Ambrosius",
    ),
    (
        "TextValue three deep in unlisted sequences",
        _in_sequence("ScheduledProcedureStepSequence", _nested(3, _text("TEXT3-Ambrosius"))),
        0x0040A160,
        "TEXT3-Ambrosius",
    ),
    (
        "TextValue two deep in kept functional groups",
        _in_sequence("PerFrameFunctionalGroupsSequence", _in_functional_groups(_text("TEXTFG-Ambrosius"))),
        0x0040A160,
        "TEXTFG-Ambrosius",
    ),
    (
        "TextValue three deep in kept reference sequences",
        _in_sequence("ReferencedImageSequence", _nested(3, _text("TEXTREF-Ambrosius"), "SourceImageSequence")),
        0x0040A160,
        "TEXTREF-Ambrosius",
    ),
    (
        "X attribute encoded as DT",
        _attribute("InstanceCoercionDateTime", "20240317101500"),
        0x00080015,
        "20240317101500",
    ),
]


@pytest.mark.parametrize(("what", "plant", "tag", "text"), ISSUE_EXAMPLES, ids=[e[0] for e in ISSUE_EXAMPLES])
def test_issue_examples_are_removed_at_every_depth(what, plant, tag, text):
    dataset = _ct()
    plant(dataset)
    assert text.encode() in dataset_to_bytes(dataset)  # the input does carry it
    out = deidentify(dataset, SECRET)
    assert tag not in _all_tags(out), what
    assert text.encode() not in dataset_to_bytes(out), what


def test_kept_sequences_are_walked_and_their_items_cleaned():
    dataset = _ct()
    leaf = _text("TEXTFG-Ambrosius")
    leaf.InStackPositionNumber = 4
    dataset.PerFrameFunctionalGroupsSequence = [_in_functional_groups(leaf)]
    out = deidentify(dataset, SECRET)
    assert out.PerFrameFunctionalGroupsSequence[0].FrameContentSequence[0].InStackPositionNumber == 4
    assert "TextValue" not in out.PerFrameFunctionalGroupsSequence[0].FrameContentSequence[0]


@pytest.mark.parametrize(
    ("keyword", "vr", "placeholder", "value"),
    [
        ("ImagePositionPatient", "UT", "x" * 20, "Smith^John MRN12345 "),  # another VR than the dictionary's
        ("PixelSpacing", "DS", "11111\\2222", "Smith\\John"),  # letters in a DS
        ("Modality", "CS", "SMITHJOHNS", "Smith^John"),  # '^' and lower case in a CS
        ("InstanceNumber", "IS", "12345678", "MRN12345"),
        ("Rows", "LO", "x" * 10, "Smith^John"),
    ],
)
def test_kept_attribute_with_foreign_value_is_removed(keyword, vr, placeholder, value):
    dataset = _ct()
    dataset.add_new(tag_for_keyword(keyword), vr, placeholder)  # pydicom refuses the foreign value itself
    data = dataset_to_bytes(dataset).replace(placeholder.encode(), value.encode())
    assert value.encode() in data
    out = deidentify(parse_dicom(data, "x.dcm"), SECRET)  # explicit VR: the foreign VR is in the bytes
    assert keyword not in out
    assert b"Smith" not in dataset_to_bytes(out) and b"MRN12345" not in dataset_to_bytes(out)


def test_every_ui_attribute_missing_from_the_table_is_remapped_or_removed():
    """Issue 12: (0008,1167), (0020,0242), (0020,9312) and every other UI attribute the table omits."""
    from pydicom._dicom_dict import DicomDictionary

    missing = [tag for tag, entry in DicomDictionary.items() if entry[0] == "UI" and tag not in BASIC_PROFILE]
    assert {0x00081167, 0x00200242, 0x00209312} <= set(missing) and len(missing) >= 25
    dataset, originals = _ct(), []
    reference = Dataset()  # the same attributes inside a kept sequence
    for index, tag in enumerate(t for t in missing if t >> 16 not in (0x0000, 0x0002)):
        original = f"1.2.826.0.1.3680043.9.7134.{index + 1}.{tag}"
        originals.append(original)
        dataset.add_new(tag, "UI", original)
        reference.add_new(tag, "UI", original)
    dataset.ReferencedImageSequence = [reference]
    out = dataset_to_bytes(deidentify(dataset, SECRET))
    assert not [original for original in originals if original.encode() in out]


def test_private_sop_class_is_remapped_and_well_known_uids_are_kept():
    dataset = _ct()
    dataset.SOPClassUID = "1.3.12.2.1107.5.9.1"  # a vendor's private class
    reference = Dataset()
    reference.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR Image Storage
    reference.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.9.7134.99"
    dataset.SourceImageSequence = [reference]
    out = deidentify(dataset, SECRET)
    assert out.SOPClassUID.startswith("2.25.") and out.file_meta.MediaStorageSOPClassUID == out.SOPClassUID
    assert out.SourceImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert out.SourceImageSequence[0].ReferencedSOPInstanceUID.startswith("2.25.")


def test_sequence_nesting_is_bounded():
    from imaging_lib.limits import DEID_MAX_SEQUENCE_DEPTH

    dataset = _ct()
    leaf = Dataset()
    leaf.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.9.7134.5"
    dataset.ReferencedImageSequence = [_nested(DEID_MAX_SEQUENCE_DEPTH + 4, leaf, "ReferencedImageSequence")]
    out = deidentify(dataset, SECRET)
    depth, item = 0, out
    while "ReferencedImageSequence" in item and item.ReferencedImageSequence:
        item, depth = item.ReferencedImageSequence[0], depth + 1
    assert depth == DEID_MAX_SEQUENCE_DEPTH
    assert pydicom.dcmread(pydicom.filebase.DicomBytesIO(dataset_to_bytes(out))).SOPInstanceUID == out.SOPInstanceUID
