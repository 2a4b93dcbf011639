"""De-identify DICOM: the PS3.15 Annex E Basic Profile, with keyed pseudonyms and shifted dates.

What :func:`deidentify` does to a dataset (``docs/deidentification.md`` has the full
conformance table):

* every attribute of Table E.1-1 (:mod:`imaging_lib.deid.profile`) gets its action, at
  the top level and inside every sequence item: ``X`` removed, ``Z`` emptied, ``D``
  replaced by a dummy of its VR, ``U`` replaced by a new UID; the IOD-dependent codes
  resolve to the choice that keeps any IOD valid (``Z/D``, ``X/D``, ``X/Z/D`` -> ``D``;
  ``X/Z`` -> ``Z``; ``X/Z/U*`` -> keep the sequence and replace the UIDs inside it);
  ``D`` on a sequence empties it;
* private attributes (odd groups), curves (``50xx``), overlays (``60xx``) and command
  elements (``0000``) are removed; attributes after the pixel data (trailing padding,
  digital signatures) are never read;
* UIDs become ``2.25.<128-bit integer>`` from an HMAC-SHA256 of the original under the
  project secret (a UUID of version 8 per RFC 9562): the same original and secret give
  the same UID across files, studies and runs, another secret gives another UID, and
  nobody without the secret can test a guess;
* Patient ID and Patient's Name become one pseudonym, ``ANON-`` and 16 base-32
  characters of an HMAC of the original Patient ID (else name and birth date);
* dates (every DA and DT attribute, anywhere, except the patient's birth date, which
  the Basic Profile empties) move back by a per-patient whole number of days between
  366 and 3652, an HMAC of the patient under the secret: intervals within a patient
  survive, calendar dates do not. Times of day are kept. This is the "Retain
  Longitudinal Temporal Information with Modified Dates" option (code 113107);
* ``PatientIdentityRemoved = YES``, ``DeidentificationMethod``,
  ``DeidentificationMethodCodeSequence`` (113100 and 113107) and
  ``LongitudinalTemporalInformationModified = MODIFIED`` are set; the file meta is
  rebuilt (``MediaStorageSOPInstanceUID`` is the new SOP Instance UID, the
  implementation UID is this library's) and the preamble is zeroed;
* an image with ``BurnedInAnnotation = YES`` is refused with
  :class:`~imaging_lib.errors.BurnedInAnnotation` unless the caller opts in: text in
  the pixels is out of reach of header de-identification.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from ..errors import BurnedInAnnotation, UnsupportedImage
from ..limits import SECRET_MIN_BYTES
from .profile import BASIC_PROFILE

__all__ = [
    "DATE_SHIFT_DAYS",
    "IMPLEMENTATION_CLASS_UID",
    "PROFILE_CODES",
    "Pseudonymizer",
    "check_secret",
    "deidentify",
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

_PATIENT_TAGS = frozenset({0x00100010, 0x00100020})  # Patient's Name, Patient ID: the pseudonym
_NOT_SHIFTED = frozenset({0x00100030, 0x00100032})  # birth date and time: the profile's action applies
_DECODED_VRS = frozenset({"DA", "DT", "TM", "SQ", "UN"})  # VRs whose values a rule other than the table may touch
_UNDEFINED_LENGTH = 0xFFFFFFFF
_DUMMY: dict[str, Any] = {
    **dict.fromkeys(("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"), "ANONYMOUS"),
    **dict.fromkeys(("DS", "IS"), "0"),
    **dict.fromkeys(("FL", "FD"), 0.0),
    **dict.fromkeys(("SL", "SS", "SV", "UL", "US", "UV", "AT"), 0),
    **dict.fromkeys(("OB", "OD", "OF", "OL", "OV", "OW", "UN"), b"\0\0"),
    "AS": "000D",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "UR": "urn:anonymous",
}


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
    return f"study:{str(dataset.get('StudyInstanceUID', '')).strip()}"


def _shift_value(value: str, vr: str, days: int) -> str:
    """Shift one DA or DT value; values without a full date are emptied."""
    text = str(value).strip()
    try:
        day = dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return ""
    shifted = (day + dt.timedelta(days=days)).strftime("%Y%m%d")
    return shifted if vr == "DA" else shifted + text[8:]


@dataclass(frozen=True)
class _Context:
    keys: Pseudonymizer
    pseudonym: str
    shift_days: int


def _resolve(action: str, vr: str) -> str:
    if action == "X/Z/U*":
        return "U*" if vr == "SQ" else "Z"
    if action in ("D", "Z/D", "X/D", "X/Z/D"):
        return "U" if vr == "UI" else "D"  # a dummy UID must still be unique and consistent
    if action in ("Z", "X/Z"):
        return "Z"
    return action  # "X" or "U"


def _values(element: Any) -> list[Any]:
    from pydicom.multival import MultiValue

    return list(element.value) if isinstance(element.value, MultiValue) else [element.value]


@functools.cache
def _dictionary_vr(key: int) -> str | None:
    """The data dictionary's VR of a public tag (repeating groups included), None if unknown."""
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(key)
    except KeyError:
        return None


def _needs_decoding(key: int, element: Any) -> bool:
    """Whether a rule may change this element's value, so it has to be decoded.

    Everything else the profile either keeps as it is (its encoded bytes carried over,
    never decoded) or removes (``X``, dropped undecoded). Decoded: the patient's name
    and ID, every attribute the table lists with another action, and any attribute
    that is or may be a date, time or sequence (by its encoded VR or the dictionary's,
    unknown tags and undefined lengths included), whose rules come before the table's.
    """
    if key in _PATIENT_TAGS:
        return True
    dictionary_vr = _dictionary_vr(key)
    undefined = element.length == _UNDEFINED_LENGTH if element.is_raw else element.is_undefined_length
    if undefined or dictionary_vr is None or element.VR in _DECODED_VRS or dictionary_vr in _DECODED_VRS:
        return True
    return BASIC_PROFILE.get(key, "X") != "X"


def _clean(dataset: Any, context: _Context) -> Any:
    """Return a new dataset holding what the profile leaves of ``dataset`` (which is not changed).

    Kept elements are shared as they were read (a raw element and its bytes, the pixel
    data included, are immutable) or copied if already decoded; changed ones are new
    elements; sequences are rebuilt item by item.
    """
    from pydicom.charset import default_encoding
    from pydicom.dataset import Dataset

    kept: dict[Any, Any] = {}
    for tag, element in dataset.items():  # the stored elements, raw ones not decoded
        group = tag.group
        if tag.is_private or group == 0x0000 or (group & 0xFF00) in (0x5000, 0x6000):
            continue
        if _needs_decoding(int(tag), element):
            decoded = dataset[tag]  # decodes a raw element
            cleaned = _cleaned_element(decoded, context)
            if cleaned is decoded:
                kept[tag] = _kept(element)
            elif cleaned is not None:
                kept[tag] = cleaned
        elif BASIC_PROFILE.get(int(tag)) is None:
            kept[tag] = _kept(element)
    result = Dataset(kept, parent_encoding=dataset.original_character_set or default_encoding)
    result.set_original_encoding(*dataset.original_encoding, dataset.original_character_set)
    result.is_undefined_length_sequence_item = dataset.is_undefined_length_sequence_item
    return result


def _kept(element: Any) -> Any:
    """An element kept as it is: a raw one shared (immutable), a decoded one copied."""
    return element if element.is_raw else copy.deepcopy(element)


def _cleaned_element(element: Any, context: _Context) -> Any:
    """The de-identified replacement of one decoded element: itself if kept, None if removed."""
    from pydicom.dataelem import DataElement

    tag, vr, key = element.tag, element.VR, int(element.tag)
    action = BASIC_PROFILE.get(key)
    if key in _PATIENT_TAGS:
        return DataElement(tag, vr, context.pseudonym)
    if vr in ("DA", "DT") and key not in _NOT_SHIFTED:
        shifted = [_shift_value(v, vr, context.shift_days) for v in _values(element) if v not in (None, "")]
        return DataElement(tag, vr, shifted[0] if len(shifted) == 1 else shifted)
    if vr == "TM" and action is not None and key not in _NOT_SHIFTED:
        return element  # times of day are kept under the modified-dates option
    if action is None:
        return _cleaned_sequence(element, context) if vr == "SQ" else element
    return _apply(element, _resolve(action, vr), context)


def _cleaned_sequence(element: Any, context: _Context, *, empty: bool = False) -> Any:
    """A new sequence element of the cleaned items (none if ``empty``), encoded as the original."""
    from pydicom.dataelem import DataElement

    items = [] if empty else [_clean(item, context) for item in element.value]
    return DataElement(element.tag, "SQ", items, is_undefined_length=element.is_undefined_length)


def _apply(element: Any, action: str, context: _Context) -> Any:
    from pydicom.dataelem import DataElement

    tag, vr = element.tag, element.VR
    if action == "X":
        return None
    if vr == "SQ" and action in ("Z", "D"):
        return _cleaned_sequence(element, context, empty=True)
    if action == "Z":
        return DataElement(tag, vr, None)
    if action == "D":
        return DataElement(tag, vr, _DUMMY.get(vr))
    if action == "U":
        remapped = [context.keys.uid(str(v)) for v in _values(element) if v is not None and str(v).strip()]
        return DataElement(tag, vr, remapped[0] if len(remapped) == 1 else remapped)
    if action == "U*":
        return _cleaned_sequence(element, context)
    raise ValueError(f"unknown de-identification action {action!r}")  # pragma: no cover - guarded by deid_profile


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
    from pydicom.uid import ExplicitVRLittleEndian

    from .._version import __version__

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.get("SOPClassUID") or original_meta.get("MediaStorageSOPClassUID")
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = original_meta.get("TransferSyntaxUID") or ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = f"IMAGINGLAB{__version__}"[:16]
    return meta


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
        Accept images whose ``BurnedInAnnotation`` is ``YES``.

    Returns
    -------
    pydicom.Dataset
        The de-identified dataset, with new file meta and a zeroed preamble. It is
        built anew: elements kept unchanged share their still-encoded bytes (pixel
        data included) with the input instead of copying them.

    Raises
    ------
    BurnedInAnnotation
        If the image declares burned-in annotation and ``allow_burned_in`` is false.
    UnsupportedImage
        If the dataset has no SOPInstanceUID (nothing to store it under).
    ValueError
        If the secret is too short.
    """
    keys = Pseudonymizer(check_secret(secret))
    if "SOPInstanceUID" not in dataset:
        raise UnsupportedImage(source, "no SOPInstanceUID: not a stored DICOM instance")
    if not allow_burned_in and str(dataset.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        raise BurnedInAnnotation(
            source, "BurnedInAnnotation is YES: text in the pixels may identify the patient (refused)"
        )
    patient = _patient_key(dataset)
    context = _Context(keys, keys.patient_pseudonym(patient), keys.date_shift_days(patient))
    original_meta = getattr(dataset, "file_meta", None) or {}
    result = _clean(dataset, context)
    result.PatientName = context.pseudonym
    result.PatientID = context.pseudonym
    _mark(result)
    result.file_meta = _file_meta(result, original_meta)
    result.preamble = b"\0" * 128
    return result
