"""Print HTML to PDF with one headless Chromium kept open per process (no LaTeX)."""

from __future__ import annotations

import atexit
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import MissingDependency, ReportFailed

__all__ = ["CHROMIUM", "CHROMIUM_HEADLESS_ARGS", "CHROMIUM_TIMEOUT_S", "html_to_pdf", "start_pdf_printer"]


CHROMIUM = str(settings.read(settings.CHROMIUM))


CHROMIUM_HEADLESS_ARGS = (
    # Headless, as root, with no network chatter: the machine reaches no Google host.
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


CHROMIUM_TIMEOUT_S = 120.0


def _kill_browser_processes(profile: Path) -> None:
    """End this process's Chromium processes that use ``profile`` (a browser that hung)."""
    import psutil

    for process in psutil.Process().children(recursive=True):
        try:
            if any(str(profile) in part for part in process.cmdline()):
                process.kill()
        except psutil.Error:  # already gone
            continue


def _playwright_api() -> Any:
    """Import ``playwright.sync_api``, or raise :class:`MissingDependency` saying how to install it."""
    try:
        from playwright import sync_api
    except ImportError as exc:
        raise MissingDependency("playwright", "needed to print reports to PDF (pip install playwright)") from exc
    return sync_api


class _PdfPrinter:
    """One headless Chromium kept open for this process's reports, driven by one private thread.

    Starting Chromium costs more than printing a page, and two browsers starting at once on two
    Dask workers contend for the cores, so each process (each worker) starts one browser on its
    first PDF and prints every later report through it. Playwright's sync API belongs to the
    thread that started it, so all browser calls run on :attr:`thread`; that also keeps them
    out of an asyncio loop the caller may be running (a Jupyter kernel).
    """

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imaging-report-pdf")
        self.profile = Path(tempfile.mkdtemp(prefix="imaging-report-chromium-"))
        self._playwright: Any = None
        self._context: Any = None

    def _open(self) -> Any:
        """Start Chromium on first use (runs on :attr:`thread`); return its browser context."""
        if self._context is None:
            self._playwright = _playwright_api().sync_playwright().start()
            self._context = self._playwright.chromium.launch_persistent_context(
                str(self.profile),
                executable_path=CHROMIUM,
                headless=True,
                args=list(CHROMIUM_HEADLESS_ARGS),
                timeout=CHROMIUM_TIMEOUT_S * 1000,
            )
        return self._context

    def _print(self, page_uri: str) -> bytes:
        """Open the page in a new tab and print it to A4 PDF with backgrounds (runs on :attr:`thread`)."""
        page = self._open().new_page()
        try:
            page.goto(page_uri, wait_until="load", timeout=CHROMIUM_TIMEOUT_S * 1000)
            return page.pdf(format="A4", print_background=True, prefer_css_page_size=True)
        finally:
            page.close()

    def start(self) -> None:
        """Start Chromium in the background, e.g. while a report notebook runs in its kernel.

        A failure here is not reported; :meth:`print_pdf` tries again and raises it.
        """
        self.thread.submit(self._open)

    def print_pdf(self, page_uri: str) -> bytes:
        """Print a page to PDF, waiting at most :data:`CHROMIUM_TIMEOUT_S` seconds.

        Parameters
        ----------
        page_uri : str
            The ``file://`` URI of a self-contained HTML page.

        Returns
        -------
        bytes
            What Chromium printed.

        Raises
        ------
        MissingDependency
            If playwright is not installed.
        ReportFailed
            If Chromium fails or times out (the browser is then ended and the next report
            starts a new one).
        """
        from concurrent.futures import TimeoutError as FutureTimeout

        playwright_error = _playwright_api().Error
        try:
            return self.thread.submit(self._print, page_uri).result(timeout=CHROMIUM_TIMEOUT_S)
        except FutureTimeout:
            self.abandon()
            raise ReportFailed(CHROMIUM, f"printing to PDF took longer than {CHROMIUM_TIMEOUT_S:.0f} s") from None
        except playwright_error as exc:
            self.abandon()
            raise ReportFailed(CHROMIUM, f"no PDF written: {exc.message.strip().splitlines()[0]}") from None

    def close(self) -> None:
        """Close the browser and its driver (on :attr:`thread`) and remove the profile."""
        import shutil

        def stop() -> None:
            if self._context is not None:
                self._context.close()
                self._playwright.stop()

        try:
            self.thread.submit(stop).result(timeout=10)
        except Exception:
            _kill_browser_processes(self.profile)
        self.thread.shutdown(wait=False)
        shutil.rmtree(self.profile, ignore_errors=True)

    def abandon(self) -> None:
        """End a browser that failed or hung; the next report gets a new printer."""
        global _PRINTER
        _kill_browser_processes(self.profile)
        self.thread.shutdown(wait=False)
        with _PRINTER_LOCK:
            if _PRINTER is self:
                _PRINTER = None


_PRINTER: _PdfPrinter | None = None


_PRINTER_LOCK = threading.Lock()


def _pdf_printer() -> _PdfPrinter:
    """This process's :class:`_PdfPrinter`, made on first use and closed at exit."""
    global _PRINTER
    with _PRINTER_LOCK:
        if _PRINTER is None:
            _PRINTER = _PdfPrinter()
            atexit.register(_PRINTER.close)
        return _PRINTER


def html_to_pdf(html: str, workdir: Path) -> bytes:
    """Print HTML to A4 PDF (backgrounds, no header or footer) with headless Chromium, no LaTeX.

    The browser is kept open between reports of this process (see :class:`_PdfPrinter`).

    Parameters
    ----------
    html : str
        A self-contained HTML page.
    workdir : pathlib.Path
        A private folder for the page.

    Returns
    -------
    bytes
        The PDF.

    Raises
    ------
    MissingDependency
        If Chromium or playwright is not installed.
    ReportFailed
        If Chromium fails, times out or writes no PDF.
    """
    if not os.path.exists(CHROMIUM):
        raise MissingDependency(CHROMIUM, "Chromium is needed to print reports to PDF (apt-get install chromium)")
    page = workdir / "report.html"
    page.write_text(html, encoding="utf-8")
    data = _pdf_printer().print_pdf(page.as_uri())
    if not data.startswith(b"%PDF"):
        raise ReportFailed(CHROMIUM, "no PDF written: the browser returned no PDF data")
    return data


def start_pdf_printer() -> None:
    """Start this process's Chromium in the background, e.g. while a report notebook runs.

    A failure here is not reported; :func:`html_to_pdf` tries again and raises it.
    """
    _pdf_printer().start()
