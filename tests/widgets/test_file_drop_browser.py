"""FileDrop in headless Chromium on a stock Voilà server: a 24 MiB file arrives whole.

Tornado refuses websocket messages over 10 MiB by default; the drop zone sends files in
chunks, so a file more than twice that size reaches Python intact with no server setting.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from support.browser import chromium_context, collect_console
from support.servers import voila_server, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELL = """
import hashlib
import ipywidgets as W
from widgets.file_drop import FileDrop

drop = FileDrop()
log = W.Label(value="")
log.add_class("drop-log")

def show(files):
    log.value = " ".join(f"{name}:{len(data)}:{hashlib.sha256(data).hexdigest()}" for name, data in files)

drop.on_files(show)
W.VBox([drop, log])
"""


def test_a_file_over_the_stock_websocket_limit_arrives_whole(tmp_path):
    payload = np.random.default_rng(3).bytes(24 * 1024**2 + 5)
    small = b"a small second file"
    (tmp_path / "big.nii").write_bytes(payload)
    (tmp_path / "small.txt").write_bytes(small)
    notebook = write_notebook(tmp_path / "drop.ipynb", [CELL])
    expected = " ".join(
        f"{name}:{len(data)}:{hashlib.sha256(data).hexdigest()}"
        for name, data in (("big.nii", payload), ("small.txt", small))
    )
    with voila_server(notebook) as server, chromium_context() as browser:
        page = browser.new_page()
        console = collect_console(page)
        try:
            page.goto(server.url_for())
            page.wait_for_selector(".imaging-drop-zone", timeout=120_000)
            page.set_input_files(".imaging-pick-files", [str(tmp_path / "big.nii"), str(tmp_path / "small.txt")])
            page.wait_for_function(
                "() => document.querySelector('.drop-log').textContent.trim().length > 0", timeout=120_000
            )
            assert page.locator(".drop-log").inner_text().strip() == expected
        except Exception:
            print("\n".join(console[-40:]), server.log()[-4000:])
            raise
        finally:
            page.close()
