# `imaging-lab hub --demo` (`make hub-demo`): the team setup on one machine with two sample users,
#   alice: researcher and reviewer (JupyterLab, the dashboards, batches, reviews)
#   bob:   viewer (the dashboards, read-only)
# signed in with one random password that `imaging-lab hub --demo` prints (kept in the Hub's state
# folder). Users' servers run as this machine's account: a demonstration, not a deployment.

import os
from pathlib import Path

from imaging_lib.hub import config as imaging
from imaging_lib.hub.server import DEMO_PASSWORD_FILE, DEMO_USERS
from imaging_lib.identity import ROLES

load_subconfig(str(Path(__file__).with_name("jupyterhub_config.py")))  # noqa: F821
c = get_config()  # noqa: F821
site = imaging.HubSite.from_settings()

c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = (site.state / DEMO_PASSWORD_FILE).read_text().strip()
c.Authenticator.allowed_users = set(DEMO_USERS)
c.JupyterHub.load_groups = imaging.role_groups(
    {role: [name for name, roles in DEMO_USERS.items() if role in roles] for role in ROLES}
)

# The sample users have no system account: their JupyterLab runs as the account that runs the Hub.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(site.state / "home" / "{username}")
if hasattr(os, "geteuid") and os.geteuid() == 0:
    c.Spawner.args = ["--allow-root"]
