"""Known PHI planted into copies of real DICOM files, and a scanner that finds it in a store.

:func:`write_phi_copies` copies DICOM files and writes recognisable, made-up identifiers
into PatientName, PatientID, PatientBirthDate, InstitutionName, ReferringPhysicianName,
AccessionNumber, a nested OtherPatientIDsSequence, a name inside a sequence the profile
keeps, and a private tag. :func:`find_phi` then says which of those strings occur in
any byte of any object or key of a store (gzip streams are searched decompressed too).
Dashboard and report tests reuse it to prove nothing identifying leaves the store.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable
from pathlib import Path

__all__ = ["PHI", "UNKNOWN_TAG", "find_phi", "find_phi_in_store", "phi_needles", "write_phi_copies"]

PHI = {
    "PatientName": "Quixbottom^Zenobia^Marigold",
    "PatientID": "MRN-84711293",
    "PatientBirthDate": "19370419",
    "InstitutionName": "Saint Wobbleford Infirmary",
    "ReferringPhysicianName": "Dr^Fennimore^Crabtree",
    "AccessionNumber": "ACC-5518273",
    "OtherPatientID": "OTHERMRN-3390127",
    "NestedName": "Pemberton^Ottoline",
    "Private": "PRIVATE-PHI-7731958",
    "DateTimeText": "20240317 Gribblethorpe^Ulrika MRN55012877",
    "ScheduledStepComment": "COMMENT-Hollingsworth-4410927",
    "AlternativeBirthDate": "ALTBIRTH-13560814-Hollingsworth",
    "AlternativeDeathDate": "ALTDEATH-14010203-Hollingsworth",
    "IssuerQualifier": "UEID-ISSUER-2271934",
    "OrderPlacer": "ORDER-PLACER-8812739",
    "UnknownTag": "UNKNOWN-TAG-6620114",
    "VariablePixelData": "VARPIXEL-PHI-3391",
    "ProcedureType": "PROCTYPE-Vandermolen-83",
    "InterventionDrug": "DRUG-Zyquorafen-2217",
    "NestedText2": "TEXT2-Ambrosius-77101",
    "NestedText3": "TEXT3-Ambrosius-77102",
    "KeptSequenceText": "KEPTSEQ-Wilberforce-5521",
}

UNKNOWN_TAG = 0x22222222
"""An even-group tag no DICOM dictionary knows, where :func:`write_phi_copies` plants PHI."""


def write_phi_copies(sources: Iterable[str | Path], folder: str | Path) -> list[Path]:
    """Copy DICOM files into ``folder`` with :data:`PHI` written into them.

    Every copy keeps its pixels, geometry and UIDs; only the identifying attributes
    above change. File names are ``phi_<index>_<original name>``.

    Returns
    -------
    list of Path
        The copies, in the order of ``sources``.
    """
    import pydicom
    from pydicom.dataset import Dataset

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for index, source in enumerate(sources):
        dataset = pydicom.dcmread(source)
        dataset.PatientName = PHI["PatientName"]
        dataset.PatientID = PHI["PatientID"]
        dataset.PatientBirthDate = PHI["PatientBirthDate"]
        dataset.InstitutionName = PHI["InstitutionName"]
        dataset.ReferringPhysicianName = PHI["ReferringPhysicianName"]
        dataset.AccessionNumber = PHI["AccessionNumber"]
        inner = Dataset()
        inner.PatientID = PHI["OtherPatientID"]
        inner.IssuerOfPatientID = PHI["InstitutionName"]
        dataset.OtherPatientIDsSequence = [inner]
        procedure = Dataset()  # a sequence Table E.1-1 does not list
        procedure.CodeValue = "PROC1"
        procedure.CodingSchemeDesignator = "99LOCAL"
        procedure.CodeMeaning = "procedure"
        procedure.ReferringPhysicianName = PHI["NestedName"]
        dataset.ProcedureCodeSequence = [procedure]
        block = dataset.private_block(0x0011, "PHI TEST CREATOR", create=True)
        block.add_new(0x01, "LO", PHI["Private"])
        _plant_issue_examples(dataset, str(dataset.get("SOPClassUID", "")))
        for tag in [tag for tag in dataset.keys() if tag.group == 0x0000]:
            del dataset[tag]  # command elements some scanners leave cannot be written to a file
        target = folder / f"phi_{index:03d}_{Path(source).name}"
        dataset.save_as(target, enforce_file_format=True)
        copies.append(target)
    return copies


def _item(**attributes):
    from pydicom.dataset import Dataset

    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def _plant_issue_examples(dataset, sop_class_uid: str) -> None:
    """Plant the values issue 12 found in the store after ingest under the old denylist."""
    from pydicom.uid import generate_uid

    dataset.AcquisitionDateTime = PHI["DateTimeText"]
    dataset.CommentsOnTheScheduledProcedureStep = PHI["ScheduledStepComment"]
    dataset.PatientBirthDateInAlternativeCalendar = PHI["AlternativeBirthDate"]
    dataset.PatientDeathDateInAlternativeCalendar = PHI["AlternativeDeathDate"]
    dataset.IssuerOfPatientIDQualifiersSequence = [_item(UniversalEntityID=PHI["IssuerQualifier"])]
    dataset.OrderPlacerIdentifierSequence = [_item(LocalNamespaceEntityID=PHI["OrderPlacer"])]
    dataset.add_new(UNKNOWN_TAG, "LO", PHI["UnknownTag"])
    dataset.add_new(0x7F000010, "OW", PHI["VariablePixelData"].encode().ljust(18, b"\0"))
    dataset.PerformedProcedureTypeDescription = PHI["ProcedureType"]
    dataset.InterventionDrugName = PHI["InterventionDrug"]
    deepest = _item(TextValue=PHI["NestedText3"])
    middle = _item(TextValue=PHI["NestedText2"], AnatomicRegionSequence=[deepest])
    dataset.ScheduledProcedureStepSequence = [_item(RequestedProcedureCodeSequence=[middle])]
    referenced = generate_uid(entropy_srcs=[str(dataset.SOPInstanceUID), "referenced"])  # another instance
    source = _item(
        ReferencedSOPClassUID=sop_class_uid, ReferencedSOPInstanceUID=referenced, TextValue=PHI["KeptSequenceText"]
    )
    reference = _item(
        ReferencedSOPClassUID=sop_class_uid,
        ReferencedSOPInstanceUID=referenced,
        TextValue=PHI["KeptSequenceText"],
        SourceImageSequence=[source],  # a kept sequence inside a kept sequence
    )
    dataset.ReferencedImageSequence = [reference]


def phi_needles() -> dict[str, list[bytes]]:
    """Byte strings to search for: each PHI value and its recognisable parts and forms."""
    needles: dict[str, list[bytes]] = {}
    for field, value in PHI.items():
        forms = {value, value.replace("^", " ")}
        forms.update(part for part in value.split("^") if len(part) >= 6)
        if field == "PatientBirthDate":
            forms.add(f"{value[:4]}-{value[4:6]}-{value[6:]}")
        needles[field] = sorted(form.encode() for form in forms)
    return needles


def _expanded(data: bytes) -> list[bytes]:
    views = [data]
    if data[:2] == b"\x1f\x8b":
        try:
            views.append(gzip.decompress(data))
        except (OSError, EOFError, zlib.error):
            pass
    return views


def find_phi(data: bytes) -> list[str]:
    """Return the :data:`PHI` fields whose strings occur in ``data`` (or its gunzipped form)."""
    found = []
    for field, needles in phi_needles().items():
        if any(needle in view for view in _expanded(data) for needle in needles):
            found.append(field)
    return found


def find_phi_in_store(store) -> dict[str, list[str]]:
    """Scan every key and every object of a store; return ``{key: [PHI fields found]}``."""
    keys = store.list()
    leaks = {}
    for key, data in store.read_many(keys).items():
        found = sorted(set(find_phi(data) + find_phi(key.encode())))
        if found:
            leaks[key] = found
    return leaks
