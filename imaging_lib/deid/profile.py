"""PS3.15 Annex E, Table E.1-1: the attributes of the Basic Application Level Confidentiality Profile.

Data only. The table itself is the package data file ``basic_profile.tsv`` next to this
module: one row per attribute, the tag (group and element in hexadecimal), the Basic
Profile action and the attribute name, transcribed from the DICOM standard (PS3.15
2024b, Table E.1-1; every tag checked against pydicom's data dictionary by a test).
Action codes, as the standard defines them:

``X``   remove the attribute
``Z``   replace with a zero-length value (or a dummy value consistent with the VR)
``D``   replace with a non-zero-length dummy value consistent with the VR
``U``   replace with a non-zero-length UID, consistent within the set of instances
``Z/D`` ``X/Z`` ``X/D`` ``X/Z/D``   one of these, depending on the IOD's attribute type
``X/Z/U*``  remove, empty, or keep the sequence and replace every UID inside it

What :mod:`imaging_lib.deid` keeps is decided by its keep-list
(:mod:`imaging_lib.deid.keep_list`); this table decides what happens to the kept
attributes it names, and documents what happens to the others.
"""

from __future__ import annotations

from importlib.resources import files

__all__ = ["ACTION_CODES", "ATTRIBUTE_NAMES", "BASIC_PROFILE", "TABLE_FILE"]

ACTION_CODES = ("X", "Z", "D", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*")

TABLE_FILE = "basic_profile.tsv"
"""Name of the package data file holding Table E.1-1 (tab-separated, with a header row)."""


def _parse(table: str) -> tuple[dict[int, str], dict[int, str]]:
    actions: dict[int, str] = {}
    names: dict[int, str] = {}
    header, *rows = table.strip().splitlines()
    if header.split("\t") != ["tag", "action", "name"]:
        raise ValueError(f"{TABLE_FILE}: unexpected header {header!r}")
    for row in rows:
        tag, action, name = row.split("\t")
        if action not in ACTION_CODES:
            raise ValueError(f"{TABLE_FILE} row {row!r}: unknown action {action!r}")
        actions[int(tag, 16)] = action
        names[int(tag, 16)] = name
    return actions, names


BASIC_PROFILE, ATTRIBUTE_NAMES = _parse(files(__package__).joinpath(TABLE_FILE).read_text(encoding="utf-8"))
"""Tag (as an int, ``0xGGGGEEEE``) to Basic Profile action; tag to attribute name."""
