"""Progress bars: redrawn on a terminal, one final line in a log file."""

from __future__ import annotations

import io

from imaging_lib.progress_bar import progress_bar, redraws


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_one_line_with_the_final_state():
    log = io.StringIO()
    assert not redraws(log)
    with progress_bar(total=200, unit="file", desc="ingest", file=log) as bar:
        for _ in range(200):
            bar.update(1)
    written = log.getvalue()
    assert "\r" not in written and written.count("\n") == 1
    assert written.startswith("ingest: 100%") and "200/200" in written


def test_a_log_file_gets_its_line_even_when_the_work_fails():
    log = io.StringIO()
    try:
        with progress_bar(total=4, desc="batch", file=log) as bar:
            bar.update(1)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert log.getvalue().count("\n") == 1 and "1/4" in log.getvalue()


def test_a_terminal_gets_tqdms_redrawn_bar():
    terminal = Terminal()
    assert redraws(terminal)
    with progress_bar(total=3, desc="ingest", file=terminal, mininterval=0) as bar:
        for _ in range(3):
            bar.update(1)
    assert terminal.getvalue().count("\r") >= 3 and "3/3" in terminal.getvalue()


def test_a_disabled_bar_writes_nothing():
    log = io.StringIO()
    with progress_bar(total=3, file=log, disable=True) as bar:
        bar.update(3)
    assert log.getvalue() == ""
