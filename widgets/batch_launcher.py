"""BatchLauncher: start a prediction batch on chosen studies from a panel, and follow it live.

The two panels that start batches (:class:`~widgets.upload_panel.UploadPanel` after an
upload, :class:`~widgets.job_monitor.JobMonitor` on the studies without a result) share
this: one model (the store's default model unless told otherwise), one set of pipeline parameters,
and a Dask client made only when the first batch starts, so a visitor who only looks
costs no cluster. The batch runs on ``$IMAGING_DASK_SCHEDULER`` when set, else on a local
cluster of this kernel (:func:`imaging_lib.jobs.get_client`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets

from imaging_lib.errors import ImagingError
from imaging_lib.identity import require

from .job_progress import JobProgress

if TYPE_CHECKING:
    from imaging_lib.jobs import Job
    from imaging_lib.store.objects import Store

__all__ = ["BatchLauncher"]


class BatchLauncher:
    """Starts prediction batches of one model on a store and shows them in a panel.

    Parameters
    ----------
    store : imaging_lib.store.Store
        The store holding the studies; results and job records go there too.
    model_uri : str, optional
        The model of every batch; default the store's default model
        (:func:`imaging_lib.models.registry.default_model`, read when a batch starts).
    client : distributed.Client, optional
        Where batches run; default :func:`imaging_lib.jobs.get_client`, made at the first batch.
    params : mapping, optional
        Pipeline parameters (see :data:`imaging_lib.jobs.batch.DEFAULT_PARAMS`).

    Attributes
    ----------
    progress : widgets.job_progress.JobProgress or None
        The live display of the last batch started.
    """

    def __init__(
        self,
        store: Store,
        *,
        model_uri: str | None = None,
        client: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.model_uri = model_uri
        self.client = client
        self.params = params
        self.progress: JobProgress | None = None
        self._identity: tuple[str, str] | None = None

    def model_identity(self) -> tuple[str, str]:
        """The model's ``(model_id, model_checksum)``: what "has a result" compares.

        The store's default is read again each time (an admin may promote another model
        meanwhile); a model given by URI, or the shipped one, is loaded and verified once.

        Raises
        ------
        imaging_lib.errors.ImagingError
            If the model cannot be found or verified.
        """
        from imaging_lib.jobs.batch import model_identity
        from imaging_lib.models.registry import default_model

        uri = self.model_uri
        if uri is None:
            default = default_model(self.store)
            if default.model_id is not None and default.checksum is not None:
                return default.model_id, default.checksum
            uri = default.uri
        if self._identity is None:
            self._identity = model_identity(uri)
        return self._identity

    def start(self, study_uids: Sequence[str], area: ipywidgets.Box, *, title: str = "") -> Job | None:
        """Start the batch on ``study_uids`` and follow it live in ``area``.

        Parameters
        ----------
        study_uids : sequence of str
            The studies (those with a result of this model are skipped by the batch).
        area : ipywidgets.Box
            Where the batch is shown: a note while it starts, then its
            :class:`~widgets.job_progress.JobProgress`.
        title : str
            A heading above the progress, if any.

        Returns
        -------
        imaging_lib.jobs.Job or None
            None when no cluster could be had (the gateway is down, the sign-in expired):
            the reason is shown in ``area``.

        Raises
        ------
        imaging_lib.errors.PermissionDenied
            If this kernel's user may not run batches (the button is hidden for them; this
            refuses a forged click).
        """
        from imaging_lib.jobs import run_batch

        require("run_batch")
        area.children = [ipywidgets.HTML("<i>Starting the batch…</i>")]
        try:
            job = run_batch(list(study_uids), self.store, self.model_uri, self.client, params=self.params)
        except ImagingError as exc:  # no cluster to be had: the gateway is down, the sign-in expired
            area.children = [ipywidgets.HTML(f"<p class='job-error'>{html.escape(str(exc))}</p>")]
            return None
        heading = [ipywidgets.HTML(f"<h4>{html.escape(title)}</h4>")] if title else []
        self.progress = JobProgress(job)
        area.children = [*heading, self.progress]
        return job
