"""Where a store URL leads: the fsspec filesystem of a local folder, ``gs://``, ``memory://`` or another URL.

:func:`open_filesystem` is the one place that knows how each backend is opened (gcsfs
anonymous against ``STORAGE_EMULATOR_HOST``, the standard Google credentials otherwise);
:func:`canonical_url` is the form a :class:`~imaging_lib.store.objects.Store` keeps and
shows. A URL never carries credentials: they go in storage options.
"""

from __future__ import annotations

import os
from typing import Any

from .. import settings
from ..errors import MissingDependency

__all__ = ["ZONAL_PROBE_ENV", "canonical_url", "open_filesystem", "reject_credentials_in_url"]

ZONAL_PROBE_ENV = "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"


def reject_credentials_in_url(url: str) -> None:
    """Refuse a URL with credentials in it (``gs://user:secret@bucket``).

    Raises
    ------
    ValueError
        If the URL's authority holds an ``@``.
    """
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        raise ValueError(f"{scheme}://...: put credentials in storage options, not in the store URL")


def open_filesystem(url: str, **storage_options: Any) -> tuple[Any, str]:
    """Return the fsspec filesystem serving ``url`` and the root path inside it.

    The one place that knows how each backend is opened: local paths and ``file://``,
    ``gs://`` (gcsfs, anonymous against ``STORAGE_EMULATOR_HOST``, standard credentials
    otherwise) and ``memory://``. Ingest uses it for ``gs://`` sources too.

    Parameters
    ----------
    url : str
        A local path, ``file://``, ``gs://bucket/prefix``, ``memory://name`` or any
        other fsspec URL.
    **storage_options
        Passed to the filesystem (for gcsfs: ``token``, ``project``, ...).

    Returns
    -------
    (fsspec.AbstractFileSystem, str)
        The filesystem and the root path without protocol or trailing ``/``.

    Raises
    ------
    MissingDependency
        If the protocol's fsspec implementation is not installed.
    """
    import fsspec

    reject_credentials_in_url(url)
    protocol, _, rest = url.partition("://") if "://" in url else ("file", "", url)
    if protocol in ("gs", "gcs"):
        os.environ.setdefault(ZONAL_PROBE_ENV, "false")  # must precede the gcsfs import
        try:
            import gcsfs
        except ImportError:  # pragma: no cover - gcsfs is a core dependency
            raise MissingDependency(url, "gs:// stores need gcsfs: pip install gcsfs") from None
        options = dict(storage_options)
        if settings.read(settings.STORAGE_EMULATOR_HOST) and "token" not in options:
            options["token"] = "anon"
        return gcsfs.GCSFileSystem(**options), rest.strip("/")
    if protocol == "file":
        return fsspec.filesystem("file"), os.path.abspath(os.path.expanduser(rest)).rstrip(os.sep) or os.sep
    if protocol == "memory":
        return fsspec.filesystem("memory"), "/" + rest.strip("/")
    try:
        filesystem = fsspec.filesystem(protocol, **storage_options)
    except (ImportError, ValueError) as exc:
        raise MissingDependency(url, f"no fsspec filesystem for {protocol}:// ({exc})") from None
    return filesystem, filesystem._strip_protocol(url).rstrip("/")


def canonical_url(url: str) -> str:
    """The form a store keeps of its URL: an absolute local path, or ``protocol://rest`` without a trailing ``/``."""
    if "://" not in url:
        return os.path.abspath(os.path.expanduser(url))
    protocol, _, rest = url.partition("://")
    if protocol == "file":
        return os.path.abspath(os.path.expanduser(rest))
    return f"{'gs' if protocol == 'gcs' else protocol}://{rest.strip('/')}"
