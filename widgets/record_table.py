"""RecordTable: a sortable, filterable table of records whose rows can be selected.

The front end (``widgets/js/record_table.js``) only draws the rows it is given and
reports clicks: a header click sets :attr:`RecordTable.sort_by` / ``ascending``, a row
click sets :attr:`RecordTable.selected` to the row's key. Sorting and filtering are
done here on a pandas DataFrame (:func:`sort_records`, :func:`filter_records`), so the
dashboards' behaviour is tested in Python and one table widget carries any number of
rows as a single JSON list.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import anywidget
import pandas as pd
import traitlets

from .assets import JS

__all__ = ["Column", "RecordTable", "filter_records", "json_rows", "sort_records"]


Column = Mapping[str, str]
"""A column: ``{"name": ..., "label": ..., "format": "text" | "number" | "percent"}``."""


def filter_records(records: pd.DataFrame, equals: Mapping[str, Any] | None = None, text: str = "") -> pd.DataFrame:
    """Keep the rows that match every filter.

    Parameters
    ----------
    records : pandas.DataFrame
    equals : mapping, optional
        Column -> value the column must equal; ``None`` values are ignored (no filter).
    text : str
        Case-insensitive substring that at least one cell of the row must contain.

    Returns
    -------
    pandas.DataFrame
        The matching rows, in their original order.
    """
    keep = pd.Series(True, index=records.index)
    for column, value in (equals or {}).items():
        if value is not None:
            keep &= records[column] == value
    needle = text.strip().lower()
    if needle:
        cells = records.astype(str).apply(lambda column: column.str.lower().str.contains(needle, regex=False))
        keep &= cells.any(axis=1)
    return records[keep]


def sort_records(records: pd.DataFrame, by: str | None, ascending: bool = True) -> pd.DataFrame:
    """Sort rows by one column, missing values last whatever the direction.

    Parameters
    ----------
    records : pandas.DataFrame
    by : str or None
        Column to sort by; ``None`` or a column the frame lacks keeps the order.
    ascending : bool

    Returns
    -------
    pandas.DataFrame
    """
    if not by or by not in records.columns:
        return records
    return records.sort_values(by, ascending=ascending, na_position="last", kind="stable")


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # arrays, lists: not a single missing value
        pass
    return str(value)


def json_rows(records: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Return ``records[columns]`` as JSON-able dicts (NaN -> None, numpy -> Python)."""
    return [
        {column: _json_value(value) for column, value in zip(columns, row, strict=True)}
        for row in records[list(columns)].itertuples(index=False, name=None)
    ]


class RecordTable(anywidget.AnyWidget):
    """A table of records: click a header to sort, click a row to select it.

    Parameters
    ----------
    columns : sequence of Column
        Shown columns, in order.
    key : str
        Column whose value identifies a row (set in :attr:`selected`); it need not be shown.
    empty_message : str
        Shown when there are no rows.

    Traits
    ------
    selected : str
        Key of the selected row, ``""`` for none.
    sort_by, ascending : str, bool
        Current sort; change them (or click a header) and call :meth:`set_records` again.
    """

    _esm = JS / "record_table.js"
    _css = JS / "record_table.css"

    columns = traitlets.List(traitlets.Dict()).tag(sync=True)
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    key = traitlets.Unicode().tag(sync=True)
    sort_by = traitlets.Unicode("").tag(sync=True)
    ascending = traitlets.Bool(True).tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    empty_message = traitlets.Unicode("Nothing to show.").tag(sync=True)

    def __init__(self, columns: Sequence[Column], key: str, **kwargs: Any) -> None:
        super().__init__(columns=[dict(column) for column in columns], key=key, **kwargs)
        self._records = pd.DataFrame()
        self.observe(self._resort, names=["sort_by", "ascending"])

    @property
    def records(self) -> pd.DataFrame:
        """The rows currently shown, sorted as shown."""
        return self._records

    def set_records(self, records: pd.DataFrame) -> None:
        """Show ``records`` sorted by the current :attr:`sort_by`.

        Parameters
        ----------
        records : pandas.DataFrame
            Must hold :attr:`key` and every shown column.
        """
        self._records = sort_records(records, self.sort_by, self.ascending)
        names = [column["name"] for column in self.columns]
        self.rows = json_rows(self._records, list(dict.fromkeys([self.key, *names])))

    def _resort(self, _change: Mapping[str, Any]) -> None:
        self.set_records(self._records)
