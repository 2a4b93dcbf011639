"""LineChart: a small live line chart (SVG) for training curves and ROC curves.

Python sends the series (names, x and y lists, colour, dashed or not); the front end
(``widgets/js/line_chart.js``) scales them and draws axes, lines, points and a legend,
and redraws whenever a trait changes, so setting :attr:`LineChart.series` again after each
epoch is the live plot. It carries numbers only, never markup: series names are drawn
as SVG text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anywidget
import traitlets

__all__ = ["LineChart", "series"]

JS = Path(__file__).resolve().parent / "js"


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def series(
    name: str, x: Sequence[Any], y: Sequence[Any], *, color: str | None = None, dash: bool = False
) -> dict[str, Any]:
    """One line of a :class:`LineChart`: missing or non-finite y values leave a gap.

    Raises
    ------
    ValueError
        If ``x`` and ``y`` differ in length.
    """
    if len(x) != len(y):
        raise ValueError(f"series {name!r}: {len(x)} x values for {len(y)} y values")
    return {
        "name": str(name),
        "x": [_number(v) for v in x],
        "y": [_number(v) for v in y],
        "color": color,
        "dash": bool(dash),
    }


class LineChart(anywidget.AnyWidget):
    """A line chart drawn in the browser.

    Traits
    ------
    series : list of dict
        :func:`series` entries.
    title, x_label, y_label : str
    x_min, x_max, y_min, y_max : float or None
        Fixed axis ends (None: from the data).
    diagonal : bool
        Draw the chance line (ROC curves).
    markers : bool
        Draw a dot at every point.
    width, height : int
        Size in CSS pixels.
    empty_message : str
        Shown while no series has a point.
    """

    _esm = JS / "line_chart.js"
    _css = JS / "line_chart.css"

    series = traitlets.List(traitlets.Dict()).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    x_label = traitlets.Unicode("").tag(sync=True)
    y_label = traitlets.Unicode("").tag(sync=True)
    x_min = traitlets.Float(None, allow_none=True).tag(sync=True)
    x_max = traitlets.Float(None, allow_none=True).tag(sync=True)
    y_min = traitlets.Float(None, allow_none=True).tag(sync=True)
    y_max = traitlets.Float(None, allow_none=True).tag(sync=True)
    diagonal = traitlets.Bool(False).tag(sync=True)
    markers = traitlets.Bool(True).tag(sync=True)
    width = traitlets.Int(420).tag(sync=True)
    height = traitlets.Int(260).tag(sync=True)
    empty_message = traitlets.Unicode("No data yet.").tag(sync=True)

    def set_series(self, lines: Sequence[Mapping[str, Any]]) -> None:
        """Show ``lines`` (only sent to the browser when they changed)."""
        new = [dict(line) for line in lines]
        if new != self.series:
            self.series = new
