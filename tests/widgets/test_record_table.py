"""RecordTable: filtering and sorting in Python; header and row clicks arrive as trait changes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from widgets.record_table import RecordTable, filter_records, json_rows, sort_records

RECORDS = pd.DataFrame(
    {
        "uid": ["a", "b", "c", "d"],
        "modality": ["MR", "CT", "MR", None],
        "probability": [0.2, np.nan, 0.9, 0.5],
        "description": ["Brain", "Chest", "brain stem", "Knee"],
    }
)
COLUMNS = [{"name": "modality", "label": "Modality"}, {"name": "probability", "label": "P", "format": "percent"}]


def test_filter_by_equality_and_case_insensitive_text():
    assert list(filter_records(RECORDS, {"modality": "MR"})["uid"]) == ["a", "c"]
    assert list(filter_records(RECORDS, {"modality": None}, "BRAIN")["uid"]) == ["a", "c"]
    assert list(filter_records(RECORDS, {"modality": "MR"}, "stem")["uid"]) == ["c"]
    assert filter_records(RECORDS, {}, "no such text").empty


def test_sort_puts_missing_values_last_in_both_directions():
    assert list(sort_records(RECORDS, "probability", True)["uid"]) == ["a", "d", "c", "b"]
    assert list(sort_records(RECORDS, "probability", False)["uid"]) == ["c", "d", "a", "b"]
    assert list(sort_records(RECORDS, "no such column")["uid"]) == ["a", "b", "c", "d"]


def test_json_rows_turn_nan_and_numpy_into_json():
    rows = json_rows(RECORDS, ["uid", "probability"])
    assert rows[1] == {"uid": "b", "probability": None}
    assert type(rows[0]["probability"]) is float


def test_header_click_resorts_and_row_click_selects():
    table = RecordTable(COLUMNS, key="uid")
    table.set_records(RECORDS)
    assert [row["uid"] for row in table.rows] == ["a", "b", "c", "d"]
    table.sort_by = "probability"  # what a header click sets from the browser
    assert [row["uid"] for row in table.rows] == ["a", "d", "c", "b"]
    table.ascending = False
    assert [row["uid"] for row in table.rows] == ["c", "d", "a", "b"]
    assert set(table.rows[0]) == {"uid", "modality", "probability"}
    table.selected = "c"
    assert table.records.iloc[0]["uid"] == "c"
