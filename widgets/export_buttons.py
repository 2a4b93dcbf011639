"""ExportButtons: "Send to archive" and "Download DICOM SEG/SR" for one study of the study browser.

* **Send to archive** sends the study's masks (DICOM SEG), measurements and prediction
  (TID 1500 SR) and LIME heat map (Parametric Map or Secondary Capture) to a DICOMweb
  archive with STOW-RS (:func:`imaging_lib.interop.export_study`), in a thread so the
  kernel keeps answering. The address field starts as ``$IMAGING_DICOMWEB_URL``;
  credentials come from the kernel's environment or keyring, never from the page. The
  status line says what was sent, or the typed error (which never holds a secret).
* **Download DICOM SEG/SR** builds the same objects on click and sends them as one zip
  over the kernel's websocket (a :class:`~widgets.download_button.DownloadButton`).

Both need the ``export`` permission (researchers and admins of a team deployment): they
are shown only to its holders (:func:`widgets.access.gate`) and both ask
:func:`imaging_lib.identity.require` in the kernel, so a forged click exports nothing.
"""

from __future__ import annotations

import html
import io
import threading
import zipfile
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import ipywidgets

from imaging_lib import settings
from imaging_lib.errors import ImagingError
from imaging_lib.identity import require
from imaging_lib.interop import FORMATS, export_study
from imaging_lib.interop.export import study_objects
from imaging_lib.store import layout

from .access import gate
from .download_button import DownloadButton

__all__ = ["DicomDownloadButton", "ExportButtons"]


class DicomDownloadButton(DownloadButton):
    """Download a study's results as DICOM objects in one zip, made when clicked.

    Parameters
    ----------
    store : imaging_lib.store.Store
    study_uid : str
    formats : iterable of str
        Some of ``seg``, ``sr``, ``pmap``.
    """

    def __init__(self, store: Any, study_uid: str, formats: Iterable[str] = FORMATS) -> None:
        super().__init__(store, layout.study_record_key(study_uid), "DICOM SEG/SR", f"{study_uid}_dicom.zip")
        self.study_uid = study_uid
        self.formats = tuple(formats)

    def payload(self) -> tuple[dict[str, str], bytes]:
        """Return the message and the zip of ``<kind>-<SOP Instance UID>.dcm`` files a click sends.

        Raises
        ------
        imaging_lib.errors.NothingToExport
            If the study has no mask and no prediction (the button then shows why).
        imaging_lib.errors.PermissionDenied
            If this kernel's user may not export.
        """
        require("export")
        objects, _ = study_objects(self.store, self.study_uid, self.formats)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
            for item in objects:
                bundle.writestr(item.filename, item.data)
        return {"type": "file", "filename": self.filename, "mime": "application/zip"}, buffer.getvalue()


class ExportButtons(ipywidgets.VBox):
    """Send a study's results to a DICOMweb archive, or download them as DICOM.

    Parameters
    ----------
    store : imaging_lib.store.Store
    study_uid : str
    archive_url : str, optional
        Initial archive address; default ``$IMAGING_DICOMWEB_URL``.
    archive_options : dict, optional
        Passed to :class:`~imaging_lib.interop.dicomweb.DicomwebArchive` (timeout, attempts...).

    Attributes
    ----------
    summary : imaging_lib.interop.ExportSummary or None
        What the last send did.
    error : imaging_lib.errors.ImagingError, ValueError or None
        Why the last send failed.
    """

    def __init__(
        self,
        store: Any,
        study_uid: str,
        archive_url: str | None = None,
        archive_options: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.study_uid = study_uid
        self.archive_options = dict(archive_options or {})
        self.summary: Any = None
        self.error: Exception | None = None
        self.archive = ipywidgets.Text(
            value=archive_url or settings.read(settings.DICOMWEB_URL) or "",
            placeholder="dicomweb+https://host:port/dicom-web",
            description="Archive",
            layout=ipywidgets.Layout(width="420px"),
        )
        self.with_sources = ipywidgets.Checkbox(value=False, description="with the de-identified images", indent=False)
        self.send_button = ipywidgets.Button(description="Send to archive", icon="upload")
        self.send_button.add_class("imaging-send-to-archive")
        self.status = ipywidgets.HTML()
        self.status.add_class("imaging-export-status")
        self.download = gate(DicomDownloadButton(store, study_uid), "export")
        gate(self.send_button, "export")
        self.send_button.on_click(lambda _button: self.send())
        self.archive.observe(self._drop_credentials, names="value")
        super().__init__(
            [ipywidgets.HBox([self.archive, self.send_button]), self.with_sources, self.status, self.download]
        )

    def _drop_credentials(self, change: Any) -> None:
        """Clear an address typed with credentials in it, so no secret stays in the widget's state."""
        if "@" in urlsplit(str(change["new"]).removeprefix("dicomweb+")).netloc:
            self.archive.value = ""
            self.status.value = (
                "<span class='failed'>Credentials never go in the address: set IMAGING_DICOMWEB_USER and "
                "IMAGING_DICOMWEB_PASSWORD (or IMAGING_DICOMWEB_TOKEN) for the dashboards, or use a keyring.</span>"
            )

    def send(self) -> threading.Thread:
        """Send the study to the archive in a thread; return the thread (join it to wait)."""
        self.send_button.disabled = True
        self.summary, self.error = None, None
        self.status.value = "<span class='sending'>Sending…</span>"
        thread = threading.Thread(target=self._send, name=f"export-{self.study_uid}", daemon=True)
        thread.start()
        return thread

    def _send(self) -> None:
        try:
            require("export")
            self.summary = export_study(
                self.store,
                self.study_uid,
                to=self.archive.value.strip(),
                with_sources=self.with_sources.value,
                archive_options=self.archive_options,
            )
        except (ImagingError, ValueError) as exc:  # typed, and never holding a secret
            self.error = exc
            name = type(exc).__name__
            self.status.value = f"<span class='failed'>Not sent: {html.escape(name)}: {html.escape(str(exc))}</span>"
        else:
            counts: dict[str, int] = {}
            for entry in self.summary.objects:
                counts[entry["kind"]] = counts.get(entry["kind"], 0) + 1
            sent = ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))
            where = html.escape(self.summary.destination["url"])
            self.status.value = f"<span class='sent'>Sent {html.escape(sent)} to {where}</span>"
        finally:
            self.send_button.disabled = False
