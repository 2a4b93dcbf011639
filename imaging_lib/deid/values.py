"""Strict value rules of de-identification: dates and times, value syntax, well-known UIDs.

Pure functions on strings and bytes, no pydicom datasets:

* :func:`shift_date`, :func:`check_time`: DA, DT and TM parsed strictly (PS3.5 6.2).
  A value that does not parse is emptied: a DT keeps no text after its date-time,
  and its UTC offset is dropped (it tells where the scan took place);
* :func:`fits_vr`: whether an element's encoded value is made of the characters its VR
  allows, for the VRs whose repertoire excludes free text (CS, DS, IS), so that a kept
  code or number cannot smuggle a name in (lengths are not checked: scanners often
  write longer numbers than PS3.5 allows, and a few more digits hide nothing);
* :func:`is_well_known_uid`: the UIDs that identify no one (SOP classes, transfer
  syntaxes, coding schemes, well-known frames of reference and instances): those of
  pydicom's UID dictionary.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["check_time", "fits_vr", "is_well_known_uid", "shift_date"]

_DA = re.compile(r"(\d{8})")
_DT = re.compile(r"(\d{8})(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?(?:[+-]\d{4})?")
_TM = re.compile(r"\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?")

# One value of each VR (PS3.5 Table 6.2-1), padding allowed, or an empty value.
_VALUE = {
    "CS": rb"[A-Z0-9_ ]*",
    "DS": rb" *(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)? *",
    "IS": rb" *(?:[+-]?\d+)? *",
}
_SYNTAX = {vr: re.compile(rb"%s(?:\\%s)*\x00?" % (one, one)) for vr, one in _VALUE.items()}


def _parsed_time(text: str) -> bool:
    """Whether ``HH[MM[SS[.F]]]`` (already matched by :data:`_TM`) names a real time of day."""
    hour, minute, second = int(text[:2]), int(text[2:4] or 0), int(text[4:6] or 0)
    return hour < 24 and minute < 60 and second < 61  # 60: a leap second


def shift_date(value: str, vr: str, days: int) -> str:
    """Shift one DA or DT value by ``days``; return ``""`` if it does not parse strictly.

    Parameters
    ----------
    value : str
        One value (trailing spaces allowed, nothing else).
    vr : str
        ``"DA"`` or ``"DT"``.
    days : int
        Days to add (negative: into the past).

    Returns
    -------
    str
        The shifted ``YYYYMMDD`` for DA; for DT the shifted date followed by the value's
        time of day, without its UTC offset. ``""`` if the value is not a full date (or
        date-time) with nothing after it.
    """
    text = value.rstrip(" \0")
    match = (_DA if vr == "DA" else _DT).fullmatch(text)
    if match is None:
        return ""
    time = match.group(2) if vr == "DT" else None
    if time and not _parsed_time(time):
        return ""
    try:
        day = dt.datetime.strptime(match.group(1), "%Y%m%d").date() + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return ""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}" + (time or "")


def check_time(value: str) -> str:
    """Return one TM value without its padding if it parses strictly, else ``""``."""
    text = value.rstrip(" \0")
    return text if _TM.fullmatch(text) and _parsed_time(text) else ""


def fits_vr(value: bytes, vr: str) -> bool:
    """Whether encoded ``value`` uses only the characters of ``vr`` (True for VRs not checked).

    Parameters
    ----------
    value : bytes
        The element's value as encoded (several values separated by backslashes).
    vr : str
        The data dictionary's VR of the attribute.
    """
    syntax = _SYNTAX.get(vr)
    return syntax is None or syntax.fullmatch(value) is not None


def is_well_known_uid(uid: str) -> bool:
    """Whether ``uid`` is in pydicom's UID dictionary (DICOM-defined, identifies no one)."""
    from pydicom._uid_dict import UID_dictionary

    return uid in UID_dictionary
