"""PS3.15 Table E.1-1 as package data: every row is a real attribute with a valid action."""

from __future__ import annotations

import re
from importlib.resources import files

from pydicom.datadict import dictionary_description

from imaging_lib.deid.profile import ACTION_CODES, ATTRIBUTE_NAMES, BASIC_PROFILE, TABLE_FILE


def test_profile_table_is_the_standard_table():
    assert len(BASIC_PROFILE) > 600
    assert set(BASIC_PROFILE.values()) <= set(ACTION_CODES)
    for tag, name in ATTRIBUTE_NAMES.items():  # a mistyped tag would name another attribute
        assert re.sub(r"\W", "", dictionary_description(tag)).lower() == re.sub(r"\W", "", name).lower()
    assert BASIC_PROFILE[0x00100010] == "Z" and BASIC_PROFILE[0x00080018] == "U"
    assert BASIC_PROFILE[0x00081140] == "X/Z/U*" and BASIC_PROFILE[0x00080080] == "X/Z/D"


def test_table_is_package_data_with_one_row_per_attribute():
    text = files("imaging_lib.deid").joinpath(TABLE_FILE).read_text(encoding="utf-8")
    rows = text.strip().splitlines()[1:]
    assert len(rows) == len(BASIC_PROFILE)  # no tag listed twice
    assert all(len(row.split("\t")) == 3 for row in rows)


def test_table_ships_in_the_wheel():
    import tomllib
    from fnmatch import fnmatch
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["imaging_lib"]
    assert any(fnmatch(f"deid/{TABLE_FILE}", pattern) for pattern in patterns)
