"""The keep-list of de-identification: the only attributes a de-identified file may hold.

De-identification is an allowlist. An attribute survives, at any depth, only if it is
named here; everything else is removed without being decoded: private and unknown
tags, repeating groups (curves ``50xx``, overlays ``60xx``, variable pixel data
``7Fxx``), every free-text, person-name and date attribute not listed, and every
sequence not listed (with all it holds). Each entry says why the platform needs the
attribute; adding one is a privacy decision, reviewed like code.

What happens to a kept attribute is not chosen here but derived, in :func:`plan`, from
PS3.15 Table E.1-1 (:mod:`imaging_lib.deid.profile`) and the one option implemented:

``K``  kept as it is (a sequence is kept and its items cleaned with the same rules)
``C``  date or time under option 113107 (Retain Longitudinal Temporal Information
       with Modified Dates): DA and DT shifted by the patient's offset, TM kept; a
       value that does not parse is emptied
``D``  replaced by the keyed patient pseudonym (Patient's Name and Patient ID)
``Z``  emptied (Type 2 attributes the Basic Profile keeps present)
``U``  every UID that is not a well-known UID (pydicom's UID dictionary: SOP classes,
       transfer syntaxes, coding schemes, ...) replaced by its keyed remapping; this
       holds for every kept UI attribute, listed in the table or not

The table's action comes first: an attribute the Basic Profile removes (``X``) cannot
be kept, and one it replaces with a dummy can only be kept as a date under the option
or as the pseudonym; :func:`plan` refuses a keep-list that says otherwise.
:mod:`imaging_lib.deid.conformance` renders the plan as the conformance table in
``docs/``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .profile import BASIC_PROFILE

__all__ = ["DATES", "KEEP_LIST", "PROFILE", "PSEUDONYM", "KeepListError", "Kept", "Rule", "plan"]

PROFILE = "profile"
"""Treatment of a kept attribute decided by Table E.1-1 (``K`` if the table does not list it)."""
DATES = "dates"
"""Kept as a date or time under option 113107 (``C``)."""
PSEUDONYM = "pseudonym"
"""Replaced by the keyed patient pseudonym (``D``)."""


@dataclass(frozen=True)
class Kept:
    """One attribute on the keep-list.

    Parameters
    ----------
    tag : int
        ``0xGGGGEEEE``.
    keyword : str
        pydicom's keyword of the tag (a test checks the two agree).
    reason : str
        Why the platform needs the attribute.
    treatment : str
        :data:`PROFILE`, :data:`DATES` or :data:`PSEUDONYM`.
    """

    tag: int
    keyword: str
    reason: str
    treatment: str = PROFILE


_GEOMETRY = "geometry: the reader builds the affine from it"
_PIXELS = "pixels: decoding the pixel data needs it"
_VALUES = "voxel values: the reader and the models turn stored pixels into physical values with it"
_MARK = "de-identification mark set by this library (PS3.15 E.1.1)"
_CATALOG_DATE = "catalog: the study date, shifted (the first of Study, Series, Acquisition, Content Date found)"
_TIME = "time of day, kept under option 113107 (intervals within a day survive)"
_TYPE2 = "Type 2 in every image IOD: kept present and empty, as the Basic Profile does"
_MR = "MR acquisition: the contrast (sequence, timing, flip angle, field) the models were trained on"
_ENHANCED = "enhanced multi-frame: the reader takes geometry and values per frame from the functional groups"
_REFERENCE = "links between images of one de-identified set (localizer, derivation source); UIDs remapped"

KEEP_LIST: tuple[Kept, ...] = (
    # ---------------------------------------------------------------- instance (SOP Common)
    Kept(0x00080005, "SpecificCharacterSet", "decodes the text values that remain"),
    Kept(0x00080016, "SOPClassUID", "what the object is; a well-known UID, so kept (a private class is remapped)"),
    Kept(0x00080018, "SOPInstanceUID", "the instance's key in the store; remapped"),
    Kept(0x00080008, "ImageType", "ORIGINAL/DERIVED, LOCALIZER: lets the catalog and models skip localizers"),
    # ---------------------------------------------------------------- patient (pseudonymised)
    Kept(0x00100010, "PatientName", "Type 2; holds the pseudonym, never the name", PSEUDONYM),
    Kept(0x00100020, "PatientID", "catalog: the patient pseudonym every study of a patient shares", PSEUDONYM),
    Kept(0x00100030, "PatientBirthDate", _TYPE2),
    Kept(0x00100040, "PatientSex", _TYPE2),
    # ---------------------------------------------------------------- study
    Kept(0x0020000D, "StudyInstanceUID", "groups the series of a study in the store and catalog; remapped"),
    Kept(0x00080020, "StudyDate", _CATALOG_DATE, DATES),
    Kept(0x00080030, "StudyTime", _TIME, DATES),
    Kept(0x00080050, "AccessionNumber", _TYPE2),
    Kept(0x00080090, "ReferringPhysicianName", _TYPE2),
    Kept(0x00200010, "StudyID", _TYPE2),
    # ---------------------------------------------------------------- series and equipment
    Kept(0x0020000E, "SeriesInstanceUID", "groups the slices of a volume; remapped"),
    Kept(0x00080060, "Modality", "catalog filter, default window (HU for CT), burned-in text rule"),
    Kept(0x00200011, "SeriesNumber", "viewer: the order of series in a study"),
    Kept(0x00080021, "SeriesDate", _CATALOG_DATE, DATES),
    Kept(0x00080031, "SeriesTime", _TIME, DATES),
    Kept(0x00180015, "BodyPartExamined", "catalog: body part filter"),
    Kept(0x00200060, "Laterality", "which side a paired organ image shows (left/right flips are errors)"),
    Kept(0x00185100, "PatientPosition", "viewer: head/feet first, supine/prone"),
    # ---------------------------------------------------------------- acquisition and content
    Kept(0x00080022, "AcquisitionDate", _CATALOG_DATE, DATES),
    Kept(0x00080032, "AcquisitionTime", _TIME, DATES),
    Kept(0x0008002A, "AcquisitionDateTime", "acquisition instant, shifted like the dates", DATES),
    Kept(0x00080023, "ContentDate", _CATALOG_DATE, DATES),
    Kept(0x00080033, "ContentTime", _TIME, DATES),
    Kept(0x00200012, "AcquisitionNumber", "tells acquisitions of one series apart"),
    Kept(0x00200013, "InstanceNumber", "viewer: slice order when positions are absent"),
    Kept(0x00180060, "KVP", "CT Image module, Type 2: tube voltage, which sets the HU calibration"),
    Kept(0x00180020, "ScanningSequence", _MR),
    Kept(0x00180021, "SequenceVariant", _MR),
    Kept(0x00180022, "ScanOptions", _MR),
    Kept(0x00180023, "MRAcquisitionType", _MR),
    Kept(0x00180080, "RepetitionTime", _MR),
    Kept(0x00180081, "EchoTime", _MR),
    Kept(0x00180082, "InversionTime", _MR),
    Kept(0x00180091, "EchoTrainLength", _MR),
    Kept(0x00181314, "FlipAngle", _MR),
    Kept(0x00180087, "MagneticFieldStrength", _MR),
    # ---------------------------------------------------------------- geometry
    Kept(0x00200052, "FrameOfReferenceUID", "series sharing it are in one patient space (registration); remapped"),
    Kept(0x00200032, "ImagePositionPatient", _GEOMETRY),
    Kept(0x00200037, "ImageOrientationPatient", _GEOMETRY),
    Kept(0x00280030, "PixelSpacing", _GEOMETRY),
    Kept(0x00180050, "SliceThickness", _GEOMETRY + " (single slices)"),
    Kept(0x00180088, "SpacingBetweenSlices", "geometry: declared slice spacing, checked against positions"),
    Kept(0x00200020, "PatientOrientation", "viewer: orientation of projection images that have no position"),
    Kept(0x00280034, "PixelAspectRatio", "viewer: non-square pixels of images without PixelSpacing"),
    Kept(0x3004000C, "GridFrameOffsetVector", _GEOMETRY + " (RT dose frames)"),
    # ---------------------------------------------------------------- enhanced multi-frame functional groups
    Kept(0x52009229, "SharedFunctionalGroupsSequence", _ENHANCED),
    Kept(0x52009230, "PerFrameFunctionalGroupsSequence", _ENHANCED),
    Kept(0x00209113, "PlanePositionSequence", _ENHANCED),
    Kept(0x00209116, "PlaneOrientationSequence", _ENHANCED),
    Kept(0x00289110, "PixelMeasuresSequence", _ENHANCED),
    Kept(0x00289145, "PixelValueTransformationSequence", _ENHANCED + " (rescale)"),
    Kept(0x00289132, "FrameVOILUTSequence", _ENHANCED + " (window)"),
    Kept(0x00209111, "FrameContentSequence", "enhanced multi-frame: frame order and dimension indices"),
    Kept(0x00189074, "FrameAcquisitionDateTime", "enhanced multi-frame: frame instant, shifted", DATES),
    Kept(0x00189151, "FrameReferenceDateTime", "enhanced multi-frame: frame reference instant, shifted", DATES),
    Kept(0x00209157, "DimensionIndexValues", "enhanced multi-frame: the frame's place in each dimension"),
    Kept(0x00209057, "InStackPositionNumber", "enhanced multi-frame: slice order within a stack"),
    Kept(0x00209128, "TemporalPositionIndex", "enhanced multi-frame: time point of the frame"),
    Kept(0x00209221, "DimensionOrganizationSequence", "enhanced multi-frame: declares the dimensions"),
    Kept(0x00209164, "DimensionOrganizationUID", "enhanced multi-frame: ties indices to their dimension; remapped"),
    Kept(0x00209311, "DimensionOrganizationType", "enhanced multi-frame: 3D, 3D_TEMPORAL, TILED_*"),
    Kept(0x00209222, "DimensionIndexSequence", "enhanced multi-frame: what each dimension index points at"),
    Kept(0x00209165, "DimensionIndexPointer", "enhanced multi-frame: the attribute a dimension indexes"),
    Kept(0x00209167, "FunctionalGroupPointer", "enhanced multi-frame: the functional group of that attribute"),
    # ---------------------------------------------------------------- pixels
    Kept(0x00280002, "SamplesPerPixel", _PIXELS),
    Kept(0x00280004, "PhotometricInterpretation", _PIXELS),
    Kept(0x00280010, "Rows", _PIXELS),
    Kept(0x00280011, "Columns", _PIXELS),
    Kept(0x00280100, "BitsAllocated", _PIXELS),
    Kept(0x00280101, "BitsStored", _PIXELS),
    Kept(0x00280102, "HighBit", _PIXELS),
    Kept(0x00280103, "PixelRepresentation", _PIXELS),
    Kept(0x00280006, "PlanarConfiguration", _PIXELS + " (colour)"),
    Kept(0x00280008, "NumberOfFrames", _PIXELS + " (multi-frame)"),
    Kept(0x00280009, "FrameIncrementPointer", "multi-frame: the attribute that steps the frames"),
    Kept(0x00280120, "PixelPaddingValue", "voxel values: marks padding outside the scanned field"),
    Kept(0x00280121, "PixelPaddingRangeLimit", "voxel values: marks padding outside the scanned field"),
    Kept(0x00281101, "RedPaletteColorLookupTableDescriptor", _PIXELS + " (palette colour)"),
    Kept(0x00281102, "GreenPaletteColorLookupTableDescriptor", _PIXELS + " (palette colour)"),
    Kept(0x00281103, "BluePaletteColorLookupTableDescriptor", _PIXELS + " (palette colour)"),
    Kept(0x00281201, "RedPaletteColorLookupTableData", _PIXELS + " (palette colour)"),
    Kept(0x00281202, "GreenPaletteColorLookupTableData", _PIXELS + " (palette colour)"),
    Kept(0x00281203, "BluePaletteColorLookupTableData", _PIXELS + " (palette colour)"),
    Kept(0x00281221, "SegmentedRedPaletteColorLookupTableData", _PIXELS + " (palette colour)"),
    Kept(0x00281222, "SegmentedGreenPaletteColorLookupTableData", _PIXELS + " (palette colour)"),
    Kept(0x00281223, "SegmentedBluePaletteColorLookupTableData", _PIXELS + " (palette colour)"),
    Kept(0x7FE00001, "ExtendedOffsetTable", _PIXELS + " (frame offsets of encapsulated data)"),
    Kept(0x7FE00002, "ExtendedOffsetTableLengths", _PIXELS + " (frame offsets of encapsulated data)"),
    Kept(0x7FE00008, "FloatPixelData", "the pixels (float)"),
    Kept(0x7FE00009, "DoubleFloatPixelData", "the pixels (double)"),
    Kept(0x7FE00010, "PixelData", "the pixels"),
    Kept(0x00282110, "LossyImageCompression", "models: whether the pixels went through lossy compression"),
    Kept(0x00282112, "LossyImageCompressionRatio", "models: how lossy"),
    Kept(0x00282114, "LossyImageCompressionMethod", "models: which lossy method"),
    Kept(0x00280301, "BurnedInAnnotation", "says whether the pixels hold text (the burned-in rule reads it)"),
    Kept(0x00280302, "RecognizableVisualFeatures", "says whether the pixels show a face or other features"),
    # ---------------------------------------------------------------- values: modality and VOI LUTs
    Kept(0x00281052, "RescaleIntercept", _VALUES),
    Kept(0x00281053, "RescaleSlope", _VALUES),
    Kept(0x00281054, "RescaleType", "viewer: the unit of the values (HU, ...)"),
    Kept(0x00283000, "ModalityLUTSequence", _VALUES + " (lookup table instead of slope and intercept)"),
    Kept(0x00283002, "LUTDescriptor", _VALUES + " (modality and VOI lookup tables)"),
    Kept(0x00283006, "LUTData", _VALUES + " (modality and VOI lookup tables)"),
    Kept(0x00283004, "ModalityLUTType", "viewer: the unit of the lookup table's output"),
    Kept(0x00281050, "WindowCenter", "viewer and models: the default window (science.preprocess)"),
    Kept(0x00281051, "WindowWidth", "viewer and models: the default window (science.preprocess)"),
    Kept(0x00281056, "VOILUTFunction", "viewer: LINEAR or SIGMOID window"),
    Kept(0x00283010, "VOILUTSequence", "viewer: window as a lookup table"),
    Kept(0x20500020, "PresentationLUTShape", "viewer: whether the grey scale is inverted"),
    Kept(0x3004000E, "DoseGridScaling", _VALUES + " (RT dose in Gy)"),
    Kept(0x30040002, "DoseUnits", "the unit of RT dose values"),
    Kept(0x30040004, "DoseType", "physical or effective RT dose"),
    # ---------------------------------------------------------------- references between images
    Kept(0x00081140, "ReferencedImageSequence", _REFERENCE),
    Kept(0x00082112, "SourceImageSequence", _REFERENCE),
    Kept(0x00081150, "ReferencedSOPClassUID", _REFERENCE),
    Kept(0x00081155, "ReferencedSOPInstanceUID", _REFERENCE),
    Kept(0x00081160, "ReferencedFrameNumber", _REFERENCE),
    # ---------------------------------------------------------------- de-identification marks
    Kept(0x00120062, "PatientIdentityRemoved", _MARK),
    Kept(0x00120063, "DeidentificationMethod", _MARK),
    Kept(0x00120064, "DeidentificationMethodCodeSequence", _MARK),
    Kept(0x00280303, "LongitudinalTemporalInformationModified", _MARK),
    Kept(0x00080100, "CodeValue", _MARK + " (code items of the method sequence)"),
    Kept(0x00080102, "CodingSchemeDesignator", _MARK + " (code items of the method sequence)"),
    Kept(0x00080104, "CodeMeaning", _MARK + " (code items of the method sequence)"),
)
"""Every attribute de-identification keeps, with its reason; nothing else survives."""


class KeepListError(ValueError):
    """The keep-list asks to keep an attribute in a way Table E.1-1 does not allow."""


@dataclass(frozen=True)
class Rule:
    """What de-identification does to one kept attribute.

    ``action`` is ``K``, ``C``, ``D``, ``Z`` or ``U`` (see the module docstring); ``vr``
    the data dictionary's VR; ``table`` the Table E.1-1 action (None if not listed).
    """

    tag: int
    keyword: str
    vr: str
    action: str
    table: str | None
    treatment: str
    reason: str


_KEPT_BY_TABLE = {"U": "U", "Z": "Z", "X/Z": "Z", "X/Z/U*": "K"}  # table action -> action on a kept attribute
_DATE_ACTIONS = frozenset({"Z", "D", "Z/D", "X/Z", "X/D", "X/Z/D"})  # what option 113107 turns into C
_DATE_VRS = frozenset({"DA", "DT", "TM"})


def _action(entry: Kept, vr: str) -> str:
    table = BASIC_PROFILE.get(entry.tag)
    where = f"keep-list entry {entry.keyword} ({entry.tag:08X})"
    if table == "X":
        raise KeepListError(f"{where}: the Basic Profile removes it (X)")
    if entry.treatment == PSEUDONYM:
        if table not in ("Z", "Z/D"):
            raise KeepListError(f"{where}: only a Z or Z/D attribute may hold the pseudonym")
        return "D"
    if entry.treatment == DATES:
        if vr not in _DATE_VRS or (table is not None and table not in _DATE_ACTIONS):
            raise KeepListError(f"{where}: option 113107 applies to dates and times the table replaces")
        return "C"
    if vr == "UI":
        if table not in (None, "U"):
            raise KeepListError(f"{where}: a UID the table does not replace with U")
        return "U"
    if table is None:
        return "K"
    if table not in _KEPT_BY_TABLE:
        raise KeepListError(f"{where}: the table's {table} would need a dummy value, which this library never keeps")
    if vr == "SQ" and _KEPT_BY_TABLE[table] != "K":
        raise KeepListError(f"{where}: a kept sequence is walked and cleaned, never emptied")
    return _KEPT_BY_TABLE[table]


@functools.cache
def plan() -> dict[int, Rule]:
    """Return the rule of every kept attribute, by tag.

    Returns
    -------
    dict of int to Rule

    Raises
    ------
    KeepListError
        If an entry is not a public attribute of the data dictionary, is listed twice,
        or would be kept against Table E.1-1 (see :class:`KeepListError`).
    """
    from pydicom.datadict import dictionary_VR, keyword_for_tag

    rules: dict[int, Rule] = {}
    for entry in KEEP_LIST:
        if keyword_for_tag(entry.tag) != entry.keyword or entry.tag in rules:
            raise KeepListError(f"keep-list entry {entry.keyword} ({entry.tag:08X}): wrong tag or listed twice")
        vr = dictionary_VR(entry.tag)
        rules[entry.tag] = Rule(
            entry.tag,
            entry.keyword,
            vr,
            _action(entry, vr),
            BASIC_PROFILE.get(entry.tag),
            entry.treatment,
            entry.reason,
        )
    return rules
