"""LineChart: the series Python sends (numbers only, gaps for missing values)."""

from __future__ import annotations

import math

import pytest

from widgets.line_chart import LineChart, series


def test_series_turn_missing_and_non_finite_values_into_gaps():
    line = series("trial-00", [1, 2, 3], [0.5, None, math.nan], color="#123456", dash=True)
    assert line == {"name": "trial-00", "x": [1.0, 2.0, 3.0], "y": [0.5, None, None], "color": "#123456", "dash": True}
    with pytest.raises(ValueError, match="3 x values for 2 y values"):
        series("bad", [1, 2, 3], [1, 2])


def test_set_series_sends_only_changes():
    chart = LineChart(title="Loss")
    sent = []
    chart.observe(lambda change: sent.append(change["new"]), names="series")
    lines = [series("a", [1], [0.7])]
    chart.set_series(lines)
    chart.set_series(lines)
    chart.set_series([series("a", [1, 2], [0.7, 0.6])])
    assert len(sent) == 2 and sent[-1][0]["y"] == [0.7, 0.6]
