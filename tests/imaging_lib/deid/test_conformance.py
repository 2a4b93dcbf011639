"""The conformance table in docs/ is generated from the code and stays in step with it."""

from __future__ import annotations

from pathlib import Path

from imaging_lib.deid.conformance import DEFAULT_PATH, conformance_table, main, write_conformance_table
from imaging_lib.deid.keep_list import plan
from imaging_lib.deid.profile import BASIC_PROFILE

REPOSITORY = Path(__file__).resolve().parents[3]


def test_docs_table_is_the_generated_table():
    committed = (REPOSITORY / DEFAULT_PATH).read_text(encoding="utf-8")
    assert committed == conformance_table(), (
        "docs/deidentification-table.md is out of date: run python -m imaging_lib.deid.conformance"
    )


def test_table_has_a_row_per_kept_and_per_profile_attribute():
    text = conformance_table()
    rules = plan()
    for rule in rules.values():
        tag = f"({rule.tag >> 16:04X},{rule.tag & 0xFFFF:04X})"
        assert f"| {tag} | {rule.vr} | {rule.action} |" in text
    removed = [tag for tag in BASIC_PROFILE if tag not in rules]
    assert f"not kept ({len(removed)})" in text
    assert "| Patient's Address | (0010,1040) | X | Basic Profile X; not on the keep-list |" in text
    assert "| (0008,0020) | DA | C | 113107 Modified Dates (Basic Profile Z) |" in text


def test_command_writes_the_table(tmp_path):
    target = tmp_path / "table.md"
    assert main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == conformance_table()
    assert write_conformance_table(tmp_path / "again.md").read_text(encoding="utf-8") == conformance_table()
