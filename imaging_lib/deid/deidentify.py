"""De-identify DICOM: an allowlist of attributes, the PS3.15 Annex E Basic Profile, keyed pseudonyms, shifted dates.

What :func:`deidentify` does to a dataset (``docs/deidentification.md`` explains it,
``docs/deidentification-table.md`` lists every attribute):

* only the attributes of the keep-list (:mod:`imaging_lib.deid.keep_list`) survive, at
  the top level and inside every kept sequence; everything else is removed without
  being decoded: private and unknown tags, repeating groups (``50xx``, ``60xx``,
  ``7Fxx``), command elements, and every text, name, date or sequence not listed.
  Attributes after the pixel data (trailing padding, digital signatures) are never read;
* each kept attribute gets the action its rule derives from Table E.1-1, before any
  date handling: ``K`` kept (a kept value of a CS, DS or IS attribute must use only
  that VR's characters, and a value encoded with another VR than the dictionary's is
  removed), ``Z`` emptied, ``D`` the patient pseudonym, ``U`` UIDs remapped, ``C``
  dates shifted and times checked (option 113107);
* every UID of a kept attribute that is not a well-known UID (pydicom's UID
  dictionary) becomes ``2.25.<128-bit integer>`` from an HMAC-SHA256 of the original
  under the project secret (a UUID of version 8 per RFC 9562): the same original and
  secret give the same UID across files, studies and runs, another secret gives
  another UID, and nobody without the secret can test a guess;
* Patient ID and Patient's Name become one pseudonym, ``ANON-`` and 16 base-32
  characters of an HMAC of the original Patient ID (else name and birth date);
* kept dates (DA, DT) move back by a per-patient whole number of days between 366 and
  3652, an HMAC of the patient under the secret: intervals within a patient survive,
  calendar dates do not. Values are parsed strictly: one that does not parse is
  emptied, a DT keeps nothing after its date-time and loses its UTC offset. Kept times
  of day (TM) are checked the same way and kept. This is the "Retain Longitudinal
  Temporal Information with Modified Dates" option (code 113107);
* ``PatientIdentityRemoved = YES``, ``DeidentificationMethod``,
  ``DeidentificationMethodCodeSequence`` (113100 and 113107) and
  ``LongitudinalTemporalInformationModified = MODIFIED`` are set; the file meta is
  rebuilt (``MediaStorageSOPInstanceUID`` is the new SOP Instance UID, the
  implementation UID is this library's) and the preamble is zeroed;
* text in the pixels is out of reach of header de-identification: an image with
  ``BurnedInAnnotation = YES``, and an ultrasound, secondary capture, "other" or
  photograph (US, SC, OT, XC by Modality or SOP Class) that does not say
  ``BurnedInAnnotation = NO``, is refused with
  :class:`~imaging_lib.errors.BurnedInAnnotation` unless the caller opts in.

Kept elements that need no change share their still-encoded bytes with the input (the
pixel data included): nothing is decoded that no rule looks at.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from ..errors import BurnedInAnnotation, UnsupportedImage
from ..limits import DEID_MAX_SEQUENCE_DEPTH, SECRET_MIN_BYTES
from .keep_list import Rule, plan
from .values import check_time, fits_vr, is_well_known_uid, shift_date

__all__ = [
    "CAPTURE_MODALITIES",
    "CAPTURE_SOP_CLASSES",
    "DATE_SHIFT_DAYS",
    "IMPLEMENTATION_CLASS_UID",
    "PROFILE_CODES",
    "Pseudonymizer",
    "check_secret",
    "deidentify",
    "deidentify_attributes",
]

DATE_SHIFT_DAYS = (366, 3652)
"""Inclusive range of the per-patient shift, in days into the past (1 to 10 years)."""

IMPLEMENTATION_CLASS_UID = f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, 'https://pypi.org/project/imaging-lab/').int}"
"""This library's Implementation Class UID, written into the file meta of every output."""

PROFILE_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
"""DeidentificationMethodCodeSequence entries (CID 7050, scheme DCM) for what is applied."""

CAPTURE_MODALITIES = frozenset({"US", "SC", "OT", "XC"})
"""Modalities whose images often carry burned-in text: refused unless they declare none."""

CAPTURE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image Storage (retired)
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
        "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image Storage (retired)
        "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume Storage
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image Storage (XC)
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image Storage (XC)
    }
)
"""SOP classes of the same images, refused on the same terms whatever their Modality says."""


def check_secret(secret: bytes | str) -> bytes:
    """Return the project secret as bytes, refusing one too short to key an HMAC.

    Raises
    ------
    ValueError
        If the secret has fewer than 16 bytes.
    """
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < SECRET_MIN_BYTES:
        raise ValueError(f"the de-identification secret must have at least {SECRET_MIN_BYTES} bytes")
    return key


@dataclass(frozen=True, repr=False)
class Pseudonymizer:
    """The keyed, deterministic maps of de-identification (UIDs, pseudonyms, date shifts).

    Parameters
    ----------
    secret : bytes
        The project secret (at least 16 bytes). Never shown in ``repr``.
    """

    secret: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "secret", check_secret(self.secret))

    def __repr__(self) -> str:
        return "Pseudonymizer(secret=<hidden>)"

    def digest(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA256 of ``value`` under the secret, separated by ``purpose``."""
        message = purpose.encode("ascii") + b"\0" + value.encode("utf-8", "surrogateescape")
        return hmac.new(self.secret, message, hashlib.sha256).digest()

    def uid(self, original: str, purpose: str = "uid") -> str:
        """Return the ``2.25.`` UID that replaces ``original`` (at most 44 characters)."""
        token = uuid.UUID(bytes=self.digest(purpose, original.strip().rstrip("\0"))[:16])
        custom = (token.int & ~(0xF << 76) & ~(0x3 << 62)) | (0x8 << 76) | (0x2 << 62)  # version 8, RFC variant
        return f"2.25.{custom}"

    def patient_pseudonym(self, patient_key: str) -> str:
        """Return the stable pseudonym (``ANON-`` and 16 characters) of a patient."""
        return "ANON-" + base64.b32encode(self.digest("patient", patient_key)[:10]).decode("ascii")

    def date_shift_days(self, patient_key: str) -> int:
        """Return the (negative) number of days this patient's dates move by."""
        low, high = DATE_SHIFT_DAYS
        draw = int.from_bytes(self.digest("date-shift", patient_key)[:8], "big")
        return -(low + draw % (high - low + 1))


# ---------------------------------------------------------------------------- de-identify
def _patient_key(dataset: Any) -> str:
    patient_id = str(dataset.get("PatientID", "") or "").strip()
    if patient_id:
        return f"id:{patient_id}"
    name, birth = str(dataset.get("PatientName", "") or ""), str(dataset.get("PatientBirthDate", "") or "")
    if name.strip() or birth.strip():
        return f"name:{name.strip()}|{birth.strip()}"
    return f"study:{_uid_of(dataset, 0x0020000D)}"


@dataclass(frozen=True)
class _Context:
    keys: Pseudonymizer
    pseudonym: str
    shift_days: int
    rules: dict[int, Rule]


def _values(element: Any) -> list[Any]:
    from pydicom.multival import MultiValue

    return list(element.value) if isinstance(element.value, MultiValue) else [element.value]


def _encoded_as(element: Any, vr: str) -> bool:
    """Whether an element is encoded with its dictionary VR (or none, implicit; or UN)."""
    encoded = element.VR
    return encoded in (None, "UN", vr) or encoded in vr.split(" or ")


def _fits(element: Any, vr: str) -> bool:
    """Whether a kept element's value uses only its VR's characters (raw bytes checked undecoded)."""
    if element.is_raw:
        return fits_vr(element.value or b"", vr)
    text = "\\".join(str(value) for value in _values(element) if value is not None)
    return fits_vr(text.encode("utf-8", "replace"), vr)


def _clean(dataset: Any, context: _Context, depth: int = 0) -> Any:
    """Return a new dataset holding what the keep-list leaves of ``dataset`` (which is not changed).

    Kept elements are shared as they were read (a raw element and its bytes, the pixel
    data included, are immutable) or copied if already decoded; changed ones are new
    elements; sequences are rebuilt item by item. Elements off the list are never decoded.
    """
    from pydicom.charset import default_encoding
    from pydicom.dataset import Dataset

    kept: dict[Any, Any] = {}
    for tag, element in dataset.items():  # the stored elements, raw ones not decoded
        rule = context.rules.get(tag)
        if rule is None or not _encoded_as(element, rule.vr):
            continue
        if rule.vr == "SQ":
            cleaned = _cleaned_sequence(dataset[tag], context, depth)  # dataset[tag] parses the items
        elif rule.action == "K":
            cleaned = (element if element.is_raw else copy.deepcopy(element)) if _fits(element, rule.vr) else None
        else:
            cleaned = _replaced(element, rule, context)
        if cleaned is not None:
            kept[tag] = cleaned
    result = Dataset(kept, parent_encoding=dataset.original_character_set or default_encoding)
    implicit_vr, little_endian = dataset.original_encoding
    result.set_original_encoding(implicit_vr, little_endian, dataset.original_character_set)
    result.is_undefined_length_sequence_item = dataset.is_undefined_length_sequence_item
    return result


def _cleaned_sequence(element: Any, context: _Context, depth: int) -> Any:
    """A kept sequence with its items cleaned by the same rules; None if removed."""
    from pydicom.dataelem import DataElement

    if element.VR != "SQ" or depth >= DEID_MAX_SEQUENCE_DEPTH:
        return None
    items = [_clean(item, context, depth + 1) for item in element.value]
    return DataElement(element.tag, "SQ", items, is_undefined_length=element.is_undefined_length)


def _strings(element: Any) -> list[str]:
    """The non-empty values of a DA, DT, TM or UI element, read from its bytes if still raw.

    These VRs hold ASCII only, so the bytes need no character set; reading them directly
    also keeps pydicom's validation from quoting a malformed value in a log.
    """
    if element.is_raw:
        values = (element.value or b"").decode("ascii", "replace").split("\\")
    else:
        values = [str(value) for value in _values(element) if value is not None]
    return [value for value in values if value.strip(" \0")]


def _uid_of(dataset: Any, tag: int) -> str:
    """One UID of the dataset (first value), read from its bytes like :func:`_strings`."""
    element = dataset.get_item(tag)
    values = _strings(element) if element is not None else []
    return values[0].strip(" \0") if values else ""


def _replaced(element: Any, rule: Rule, context: _Context) -> Any:
    """The replacement of a kept element whose rule changes it (``D``, ``Z``, ``U``, ``C``)."""
    from pydicom.dataelem import DataElement

    tag, vr = element.tag, rule.vr
    if rule.action == "D":
        return DataElement(tag, vr, context.pseudonym)
    if rule.action == "Z":
        return DataElement(tag, vr, None)
    present = _strings(element)
    if rule.action == "U":
        uids = [value.strip(" \0") for value in present]
        new = [uid if is_well_known_uid(uid) else context.keys.uid(uid) for uid in uids]
    elif vr == "TM":  # rule.action == "C"
        new = [time for time in map(check_time, present) if time]
    else:
        new = [date for date in (shift_date(value, vr, context.shift_days) for value in present) if date]
    return DataElement(tag, vr, (new[0] if len(new) == 1 else new) or None)


def _mark(dataset: Any) -> None:
    from pydicom.dataset import Dataset

    from .._version import __version__

    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = [
        "DICOM PS3.15 E.1.1 Basic Profile",
        "Retain Longitudinal Temporal Info Modified Dates",
        f"imaging-lab {__version__}"[:64],
    ]
    items = []
    for value, meaning in PROFILE_CODES:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    dataset.DeidentificationMethodCodeSequence = items
    dataset.LongitudinalTemporalInformationModified = "MODIFIED"


def _file_meta(dataset: Any, original_meta: Any) -> Any:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian

    from .._version import __version__

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.get("SOPClassUID") or original_meta.get("MediaStorageSOPClassUID")
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = original_meta.get("TransferSyntaxUID") or ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = f"IMAGINGLAB{__version__}"[:16]
    return meta


def _refuse_burned_in(dataset: Any, source: str) -> None:
    """Raise :class:`BurnedInAnnotation` for an image whose pixels may hold text."""
    from pydicom.uid import UID

    declared = str(dataset.get("BurnedInAnnotation", "") or "").strip().upper()
    if declared == "YES":
        raise BurnedInAnnotation(
            source, "BurnedInAnnotation is YES: text in the pixels may identify the patient (refused)"
        )
    if declared == "NO":
        return
    modality = str(dataset.get("Modality", "") or "").strip().upper()
    sop_class = _uid_of(dataset, 0x00080016)
    if modality in CAPTURE_MODALITIES or sop_class in CAPTURE_SOP_CLASSES:
        kind = modality if modality in CAPTURE_MODALITIES else UID(sop_class).name
        raise BurnedInAnnotation(
            source,
            f"{kind} image without BurnedInAnnotation: may carry burned-in text "
            "(refused; accept it with allow_burned_in after checking the pixels)",
        )


def deidentify_attributes(dataset: Any, secret: bytes | str) -> Any:
    """The attributes of ``dataset`` as :func:`deidentify` leaves them, for data that is not an instance.

    The same keep-list, UID map, pseudonym and date shift as :func:`deidentify`, without
    its checks of a stored image (SOP Instance UID, burned-in text), marks and file
    meta. A QIDO-RS answer about a study, de-identified this way, shows what the store
    will hold once the study is ingested: its de-identified Study Instance UID, patient
    pseudonym and shifted dates.

    Parameters
    ----------
    dataset : pydicom.Dataset
        Any data set (a query answer, a header).
    secret : bytes or str
        The project secret (at least 16 bytes).

    Returns
    -------
    pydicom.Dataset
        A new data set; ``dataset`` is not changed.

    Raises
    ------
    ValueError
        If the secret is too short.
    """
    keys = Pseudonymizer(check_secret(secret))
    patient = _patient_key(dataset)
    context = _Context(keys, keys.patient_pseudonym(patient), keys.date_shift_days(patient), plan())
    result = _clean(dataset, context)
    result.PatientName = context.pseudonym
    result.PatientID = context.pseudonym
    return result


def deidentify(
    dataset: Any,
    secret: bytes | str,
    *,
    source: str = "<dataset>",
    allow_burned_in: bool = False,
) -> Any:
    """Return a de-identified copy of a DICOM dataset (the input is left unchanged).

    Parameters
    ----------
    dataset : pydicom.Dataset
        A dataset read from a file (with its file meta), pixel data included.
    secret : bytes or str
        The project secret (at least 16 bytes) keying UIDs, pseudonyms and date shifts.
    source : str
        Name used in error messages.
    allow_burned_in : bool
        Accept images whose pixels may hold text: ``BurnedInAnnotation = YES``, and US,
        SC, OT or XC images that do not declare ``BurnedInAnnotation = NO``.

    Returns
    -------
    pydicom.Dataset
        The de-identified dataset, with new file meta and a zeroed preamble. It is
        built anew: elements kept unchanged share their still-encoded bytes (pixel
        data included) with the input instead of copying them.

    Raises
    ------
    BurnedInAnnotation
        If the pixels may hold text (see ``allow_burned_in``) and the caller did not opt in.
    UnsupportedImage
        If the dataset has no SOPInstanceUID (nothing to store it under).
    ValueError
        If the secret is too short.
    """
    check_secret(secret)
    if "SOPInstanceUID" not in dataset:
        raise UnsupportedImage(source, "no SOPInstanceUID: not a stored DICOM instance")
    if not allow_burned_in:
        _refuse_burned_in(dataset, source)
    original_meta = getattr(dataset, "file_meta", None) or {}
    result = deidentify_attributes(dataset, secret)
    _mark(result)
    result.file_meta = _file_meta(result, original_meta)
    result.preamble = b"\0" * 128
    return result
