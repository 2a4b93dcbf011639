"""ReviewPanel: review one study in the study browser; every change is saved as a new label version.

For the opened study the panel accepts or rejects its prediction with a comment, labels
the study (lesion / no lesion) and the viewer's current slice, marks the mask shown (a
saved segmentation or the latest label mask) as reviewed, and shows the history of label
versions (who, when, tool, decision), any of which can be restored. It opens the label
mask (the latest version's, or an empty one on the study's grid) in the viewer's edit mode
(brush, eraser, fill, interpolation, undo: :mod:`widgets.papaya_edit`) and saves the edited
mask as a new version whose tool names what drew it (``brush+eraser``...). Saving goes
through :func:`imaging_lib.store.labels.save_label_version` with the version the panel
shows as parent: if someone saved meanwhile, the panel says so, keeps the edit as a
branch and shows the newer version; a mask off the study's grid is refused with the reason.

Who saves is :meth:`ReviewPanel.who`: the ``user`` the dashboard gives, else
:func:`imaging_lib.store.records.current_user` (``IMAGING_USER``, ``JUPYTERHUB_USER`` or
the OS user). Whether they may save or edit at all is the ``review`` permission of
:mod:`imaging_lib.identity`: the buttons are shown to those who hold it
(:func:`widgets.access.gate`) and every save asks :func:`~imaging_lib.identity.require`.

:func:`review_counts_html` draws the landing page's counts.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets

from imaging_lib.errors import ImagingError, StaleLabelVersion
from imaging_lib.identity import require
from imaging_lib.store import layout, records, review
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.labels import editable_mask, label_history, revert, save_label_version
from imaging_lib.volume import Volume

from .access import gate

__all__ = [
    "COUNT_TILES",
    "LABEL_OVERLAY",
    "TOOL",
    "ReviewPanel",
    "history_html",
    "review_counts_html",
]

TOOL = "review-panel"
#: Name of the label mask's overlay in the viewer (the latest version's mask, and the one edited).
LABEL_OVERLAY = "label mask"
EDIT_HELP = (
    "Editing the label mask: B brush, E eraser, F fill, I interpolate, [ ] size, { } slices, "
    "Ctrl+Z undo, Ctrl+Shift+Z redo."
)
#: The landing page's tiles: count name, label and colour.
COUNT_TILES = (
    ("studies", "Studies", "#455a64"),
    ("predicted", "Predicted", "#1565c0"),
    (review.NEEDS_REVIEW, "Needing review", "#ef6c00"),
    (review.ACCEPTED, "Accepted", "#2e7d32"),
    (review.REJECTED, "Rejected", "#c62828"),
)
LABEL_NAMES = {"lesion": "lesion", "no_lesion": "no lesion"}
UNLABELLED = "unlabelled"


def review_counts_html(counts: Mapping[str, int]) -> str:
    """The landing page's counts as coloured tiles (``.review-count`` with ``data-name`` and ``data-value``)."""
    tiles = "".join(
        f"<div class='review-count' data-name='{html.escape(name)}' data-value='{int(counts.get(name, 0))}' "
        f"style='background:{colour};color:white;padding:0.6em 1.2em;border-radius:6px;min-width:7em'>"
        f"<div style='font-size:2em;font-weight:bold'>{int(counts.get(name, 0))}</div>"
        f"<div>{html.escape(label)}</div></div>"
        for name, label, colour in COUNT_TILES
    )
    return f"<div class='review-counts' style='display:flex;gap:0.8em;flex-wrap:wrap'>{tiles}</div>"


def _decision_text(record: Mapping[str, Any]) -> str:
    decision = record.get("decision") or {}
    if not decision:
        return "–"
    return f"{decision.get('verdict')} {decision.get('predicted_label')} ({decision.get('model_id')})"


def _slices_text(record: Mapping[str, Any]) -> str:
    slices = record.get("slice_labels") or {}
    return ", ".join(f"{index}: {LABEL_NAMES.get(value, value)}" for index, value in slices.items()) or "–"


def _mask_text(record: Mapping[str, Any]) -> str:
    mask = record.get("mask") or {}
    if not mask:
        return "–"
    return f"{mask.get('voxel_count')} voxels, {'reviewed' if mask.get('reviewed') else 'not reviewed'}"


def history_html(history: list[dict[str, Any]]) -> str:
    """A table of label versions, newest first; each row carries its version and content hash."""
    if not history:
        return "<i class='label-history-empty'>No label versions yet.</i>"
    header = "".join(
        f"<th style='padding:2px 6px;text-align:left'>{name}</th>"
        for name in ("Version", "When", "Who", "Tool", "Decision", "Study", "Slices", "Mask", "Comment")
    )
    rows = []
    for record in reversed(history):
        made = record.get("provenance") or {}
        version = str(record.get("version"))
        if record.get("branch"):
            version += " (branch)"
        if record.get("reverted_from"):
            version += f" ← {record['reverted_from']}"
        cells = (
            version,
            str(made.get("created_at", ""))[:19].replace("T", " "),
            made.get("created_by", ""),
            record.get("tool", ""),
            _decision_text(record),
            LABEL_NAMES.get(str(record.get("study_label")), "–"),
            _slices_text(record),
            _mask_text(record),
            record.get("comment", ""),
        )
        body = "".join(
            f"<td style='padding:2px 6px;vertical-align:top'>{html.escape(str(cell))}</td>" for cell in cells
        )
        rows.append(
            f"<tr class='label-version' data-version='{html.escape(str(record.get('version')))}' "
            f"data-content-sha256='{html.escape(str(record.get('content_sha256')))}'>{body}</tr>"
        )
    style = "font-size:0.85em;border-collapse:collapse;line-height:1.3"
    return (
        f"<table class='label-history' style='{style}'><thead><tr>{header}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


class ReviewPanel(ipywidgets.VBox):
    """Review and label one study; every action saves a new label version.

    Parameters
    ----------
    store : imaging_lib.store.Store
    study_uid : str
    viewer : widgets.PapayaViewer, optional
        Its current slice (``viewer.coordinate``) is the one :meth:`label_slice` labels.
    masks : mapping of str to str, optional
        Masks shown in the viewer that can be marked reviewed: name -> store key (saved
        segmentations). The latest label version's mask is added.
    user : str, optional
        Who reviews (the dashboard's user); default :func:`imaging_lib.store.records.current_user`.
    on_saved : callable, optional
        Called with each saved record (the study browser refreshes its table).

    Attributes
    ----------
    history : list of dict
        The study's label versions, as last read.
    latest : dict
        Its latest version, the parent of the next save (empty if none).
    """

    def __init__(
        self,
        store: Any,
        study_uid: str,
        *,
        viewer: Any = None,
        masks: Mapping[str, str] | None = None,
        user: str | None = None,
        on_saved: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.store, self.study_uid, self.viewer = store, study_uid, viewer
        self.catalog = Catalog(store)
        self._user, self._on_saved = user, on_saved
        self._masks = dict(masks or {})
        self.history: list[dict[str, Any]] = []
        self.latest: dict[str, Any] = {}
        self.result: tuple[str, dict[str, Any]] | None = None
        self.status = ipywidgets.HTML()
        auto = ipywidgets.Layout(width="auto")
        toggles = {"button_width": "7em"}
        self.comment = ipywidgets.Textarea(
            placeholder="Comment: why (kept with the version)", rows=2, layout=ipywidgets.Layout(width="95%")
        )
        self.accept_button = ipywidgets.Button(
            description="Accept prediction", button_style="success", icon="check", layout=auto
        )
        self.reject_button = ipywidgets.Button(
            description="Reject prediction", button_style="danger", icon="times", layout=auto
        )
        labels = [(name, value) for value, name in LABEL_NAMES.items()]
        self.study_label = ipywidgets.ToggleButtons(options=labels, value=None, style=toggles)
        self.save_study_button = ipywidgets.Button(description="Save study label", layout=auto)
        self.slice_info = ipywidgets.HTML()
        self.slice_label = ipywidgets.ToggleButtons(
            options=[*labels, (UNLABELLED, UNLABELLED)], value=None, style=toggles
        )
        self.save_slice_button = ipywidgets.Button(description="Save slice label", layout=auto)
        self.mask_choice = ipywidgets.Dropdown(options=[], layout=ipywidgets.Layout(width="14em"))
        self.mark_reviewed_button = ipywidgets.Button(
            description="Mark mask reviewed", icon="check-square", layout=auto
        )
        self.edit_mask_button = ipywidgets.Button(description="Edit label mask", icon="paint-brush", layout=auto)
        self.save_mask_button = ipywidgets.Button(
            description="Save edited mask", icon="save", button_style="primary", layout=auto, disabled=True
        )
        self.history_table = ipywidgets.HTML()
        self.revert_choice = ipywidgets.Dropdown(options=[], layout=ipywidgets.Layout(width="14em"))
        self.revert_button = ipywidgets.Button(description="Revert to this version", icon="undo", layout=auto)
        self.message = ipywidgets.HTML()
        self.accept_button.on_click(lambda _b: self.decide(review.ACCEPTED))
        self.reject_button.on_click(lambda _b: self.decide(review.REJECTED))
        self.save_study_button.on_click(lambda _b: self.set_study_label(self.study_label.value))
        self.save_slice_button.on_click(lambda _b: self.label_slice(self.slice_label.value))
        self.mark_reviewed_button.on_click(lambda _b: self.mark_mask_reviewed(self.mask_choice.value))
        self.revert_button.on_click(lambda _b: self.revert_to(self.revert_choice.value))
        for button in (
            self.accept_button,
            self.reject_button,
            self.save_study_button,
            self.save_slice_button,
            self.mark_reviewed_button,
            self.revert_button,
            self.edit_mask_button,
            self.save_mask_button,
        ):
            gate(button, "review")  # shown to reviewers only; _save refuses a forged click
        self.edit_mask_button.on_click(lambda _b: self.edit_mask())
        self.save_mask_button.on_click(lambda _b: self.save_edited_mask())
        if viewer is not None:
            viewer.observe(self._show_slice, names="coordinate")
        row = ipywidgets.HBox
        super().__init__(
            [
                ipywidgets.HTML("<h4>Review</h4>"),
                self.status,
                self.comment,
                row([self.accept_button, self.reject_button]),
                ipywidgets.HTML("Study:"),
                row([self.study_label, self.save_study_button]),
                self.slice_info,
                row([self.slice_label, self.save_slice_button]),
                ipywidgets.HTML("Mask shown:"),
                row([self.mask_choice, self.mark_reviewed_button]),
                row([self.edit_mask_button, self.save_mask_button]),
                self.message,
                ipywidgets.HTML("<h4>Label history</h4>"),
                self.history_table,
                row([self.revert_choice, self.revert_button]),
            ],
            layout=ipywidgets.Layout(padding="0 0 1em 0"),
        )
        self.add_class("review-panel")
        self.study_label.add_class("review-study-label")
        self.slice_label.add_class("review-slice-label")
        self.refresh()

    # ------------------------------------------------------------------ state
    def who(self) -> str:
        """The reviewer's name recorded in every version: the dashboard's user, else the current user."""
        return self._user or records.current_user()

    @property
    def current_slice(self) -> int | None:
        """The viewer's current slice (voxel index along the slice axis), if there is a viewer."""
        coordinate = getattr(self.viewer, "coordinate", None) or {}
        ijk = coordinate.get("ijk")
        return int(ijk[2]) if ijk is not None else None

    def refresh(self) -> None:
        """Re-read the study's label versions and latest prediction and redraw."""
        self.history = label_history(self.store, self.study_uid)
        main = review.main_line(self.history)
        self.latest = latest = dict(main[-1]) if main else {}
        self.result = self.catalog.latest_results(self.study_uid).get(self.study_uid)
        status = review.review_status(latest or None, self.result)
        version = html.escape(str(latest.get("version", "none yet")))
        prediction = f"prediction <b>{html.escape(str(self.result[1].get('label')))}</b>" if self.result else ""
        self.status.value = (
            f"<div class='review-status' data-status='{html.escape(status)}' data-version='{version}'>"
            f"Review: <b>{html.escape(status)}</b> · {prediction or 'no prediction'} · "
            f"latest label version {version}</div>"
        )
        for button in (self.accept_button, self.reject_button):
            button.disabled = self.result is None
        self.study_label.value = latest.get("study_label")
        masks = dict(self._masks)
        if latest.get("mask"):
            masks[f"label {latest['version']}"] = latest["mask"]["key"]
        self.mask_choice.options = list(masks.items())
        self.mask_choice.value = latest["mask"]["key"] if latest.get("mask") else next(iter(masks.values()), None)
        self.mark_reviewed_button.disabled = not masks
        self.history_table.value = history_html(self.history)
        self.revert_choice.options = [str(record["version"]) for record in reversed(self.history)]
        self.revert_choice.value = self.revert_choice.options[0] if self.history else None
        self.revert_button.disabled = not self.history
        self.edit_mask_button.disabled = self.viewer is None
        self._show_slice()

    def _show_slice(self, _change: Any = None) -> None:
        index = self.current_slice
        if index is None:
            self.slice_info.value = "<i>No viewer: slice labels need a current slice.</i>"
            return
        value = (self.latest.get("slice_labels") or {}).get(str(index))
        slices = self.viewer.volume.shape[2] if getattr(self.viewer, "volume", None) is not None else "?"
        self.slice_info.value = (
            f"<div class='slice-label' data-slice='{index}'>Slice k={index} of {slices} (the viewer's): "
            f"<b>{html.escape(LABEL_NAMES.get(str(value), UNLABELLED))}</b></div>"
        )
        self.slice_label.value = value or UNLABELLED

    def _say(self, text: str, error: bool = False) -> None:
        colour = "#b00020" if error else "#2e7d32"
        state = "error" if error else "saved"
        self.message.value = (
            f"<div class='review-message' data-state='{state}' style='color:{colour}'>{html.escape(text)}</div>"
        )

    # ------------------------------------------------------------------ actions
    def _save(
        self, action: Callable[..., dict[str, Any]], *, tool: str = TOOL, **changes: Any
    ) -> dict[str, Any] | None:
        """Save through ``action`` on the version shown; say what happened; None if refused.

        Every save needs the ``review`` permission (:func:`imaging_lib.identity.require`),
        checked here in the kernel, so a click forged from the page of a user without it is
        refused and nothing is written.
        """
        parent = self.latest.get("version")
        comment = self.comment.value
        try:
            require("review")
            record = action(
                self.store, self.study_uid, parent=parent, comment=comment, tool=tool, created_by=self.who(), **changes
            )
        except StaleLabelVersion as exc:
            self.refresh()
            self._say(f"Not saved on top: {exc.latest} was saved meanwhile. Your edit is kept as {exc.branch}.", True)
            return None
        except ImagingError as exc:
            self._say(f"Not saved: {exc.reason}", error=True)
            return None
        self.comment.value = ""
        self.refresh()
        drawn = f" ({tool})" if tool != TOOL else ""
        self._say(f"Saved {record['version']}{drawn} by {record['provenance']['created_by']}.")
        if self._on_saved is not None:
            self._on_saved(record)
        return record

    def decide(self, verdict: str) -> dict[str, Any] | None:
        """Accept or reject the prediction shown, with the comment typed; returns the saved record."""
        if self.result is None:
            self._say("There is no prediction to review.", error=True)
            return None
        return self._save(save_label_version, decision=verdict, result_key=self.result[0])

    def set_study_label(self, label: str | None) -> dict[str, Any] | None:
        """Label the study ``"lesion"`` or ``"no_lesion"``."""
        if label is None:
            self._say("Choose lesion or no lesion first.", error=True)
            return None
        return self._save(save_label_version, study_label=label)

    def label_slice(self, label: str | None, index: int | None = None) -> dict[str, Any] | None:
        """Label a slice (default the viewer's current one); ``"unlabelled"`` removes its label."""
        index = self.current_slice if index is None else index
        if index is None or label is None:
            self._say("Choose a slice in the viewer and a label first.", error=True)
            return None
        return self._save(save_label_version, slice_labels={index: None if label == UNLABELLED else label})

    def mark_mask_reviewed(self, key: str | None) -> dict[str, Any] | None:
        """Mark the mask stored at ``key`` (one of :attr:`mask_choice`'s) as reviewed in a new version."""
        if not key:
            self._say("There is no mask to mark.", error=True)
            return None
        latest_mask = self.latest.get("mask") or {}
        if key == latest_mask.get("key"):
            return self._save(save_label_version, mask_reviewed=True)
        if layout.parse(key) is None or key not in self._masks.values():
            self._say(f"{key} is not a mask shown here.", error=True)
            return None
        return self._save(save_label_version, mask=self.store.read_volume(key), mask_reviewed=True, mask_source=key)

    def revert_to(self, version: str | None) -> dict[str, Any] | None:
        """Save a new version equal to ``version`` (a branch too: that adopts it)."""
        if not version:
            self._say("Choose a version first.", error=True)
            return None
        return self._save(revert, version=version)

    # ------------------------------------------------------------------ the label mask
    def edit_mask(self) -> None:
        """Open the label mask in the viewer's edit mode (the latest version's, or an empty one)."""
        if self.viewer is None:
            self._say("Editing needs a viewer.", error=True)
            return
        try:
            require("review")  # the button is shown to reviewers only; this refuses a forged click
            if LABEL_OVERLAY not in (overlay["name"] for overlay in self.viewer.overlays):
                mask = editable_mask(self.store, self.study_uid, self.latest or None)
                self.viewer.add_overlay(mask, lut="Blue Overlay", alpha=0.5, name=LABEL_OVERLAY, editable=True)
            self.viewer.edit(LABEL_OVERLAY)
        except ImagingError as exc:
            self._say(f"The label mask cannot be edited: {exc.reason}", error=True)
            return
        self.save_mask_button.disabled = False
        self._say(EDIT_HELP)

    def save_edited_mask(self) -> dict[str, Any] | None:
        """Save the viewer's label mask as a new version; its tool names what drew it (``brush+eraser``...)."""
        viewer = self.viewer
        if viewer is None or not viewer.edit_overlay:
            self._say("Open the label mask for editing first.", error=True)
            return None
        if viewer.edits_arriving(LABEL_OVERLAY):
            self._say("An edit is still arriving from the browser: save again in a moment.", error=True)
            return None
        tools = viewer.edited_with(LABEL_OVERLAY)
        if not tools:
            self._say("Nothing was drawn since the last save.", error=True)
            return None
        mask = Volume(viewer.mask(LABEL_OVERLAY), viewer.volume.affine)
        record = self._save(save_label_version, mask=mask, tool="+".join(tools))
        if record is not None:
            viewer.mark_saved(LABEL_OVERLAY)
        return record
