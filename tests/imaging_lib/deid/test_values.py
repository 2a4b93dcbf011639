"""Strict DA/DT/TM parsing and VR character checks of de-identification."""

from __future__ import annotations

import pytest

from imaging_lib.deid.values import check_time, fits_vr, is_well_known_uid, shift_date


@pytest.mark.parametrize(
    ("value", "vr", "expected"),
    [
        ("20240317", "DA", "20240307"),
        ("20240317 ", "DA", "20240307"),  # trailing padding
        ("20240301", "DA", "20240220"),  # across a month (2024 is a leap year)
        ("20240317101500", "DT", "20240307101500"),
        ("20240317101500.250000+0100", "DT", "20240307101500.250000"),  # the UTC offset is dropped
        ("20240317-0500", "DT", "20240307"),
        ("20240317 Smith^John MRN12345", "DT", ""),  # issue 12: text after the date-time
        ("20240317Smith", "DT", ""),
        ("2024", "DT", ""),  # no full date: cannot be shifted by days
        ("202403", "DT", ""),
        ("20240317256000", "DT", ""),  # hour 25
        ("2024-03-17", "DA", ""),  # ACR-NEMA style
        ("20240230", "DA", ""),  # no such day
        ("20240317\\20240318", "DA", ""),  # one value at a time
        ("", "DA", ""),
    ],
)
def test_dates_are_parsed_strictly_and_shifted(value, vr, expected):
    assert shift_date(value, vr, -10) == expected


def test_shift_near_the_calendar_start_is_emptied_not_wrapped():
    assert shift_date("00010105", "DA", -10) == ""
    assert shift_date("00100105", "DA", -10) == "00091226"  # years stay four digits


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("101500", "101500"),
        ("101500.123456 ", "101500.123456"),
        ("10", "10"),
        ("1015", "1015"),
        ("235960", "235960"),  # a leap second
        ("25", ""),
        ("1060", ""),
        ("10:15:00", ""),  # ACR-NEMA style
        ("101500+0100", ""),
        ("101500 Smith", ""),
        ("101500.1234567", ""),
    ],
)
def test_times_are_parsed_strictly(value, expected):
    assert check_time(value) == expected


@pytest.mark.parametrize(
    ("value", "vr", "fits"),
    [
        (b"ORIGINAL\\PRIMARY\\AXIAL ", "CS", True),
        (b"", "CS", True),
        (b"Smith^John", "CS", False),
        (b"MONOCHROME2", "CS", True),
        (b"-158.135803\\-179.035797\\-75.699997", "DS", True),
        (b"3.5e-2 ", "DS", True),
        (b"1.0\\Smith", "DS", False),
        (b"12 ", "IS", True),
        (b"1A", "IS", False),
        (b"anything at all", "LO", True),  # free text VRs are not checked: only kept if listed
    ],
)
def test_value_characters_must_fit_the_vr(value, vr, fits):
    assert fits_vr(value, vr) is fits


def test_well_known_uids_are_the_dictionary():
    assert is_well_known_uid("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    assert is_well_known_uid("1.2.840.10008.1.2.1")  # Explicit VR Little Endian
    assert is_well_known_uid("1.2.840.10008.2.16.4")  # DICOM Controlled Terminology (coding scheme)
    assert not is_well_known_uid("1.2.840.10008.5.1.4.1.1.2.999")  # DICOM root, not a defined UID
    assert not is_well_known_uid("1.3.12.2.1107.5.2.32.35162.2012021515532781")
