# JupyterHub for a team on imaging-lab: sign-in, roles from Hub groups, JupyterLab for researchers,
# the Voilà dashboards as a Hub service behind Hub OAuth, and (optionally) a Dask Gateway.
#
# `imaging-lab hub` starts `jupyterhub -f` on this file with the environment it reads:
#   IMAGING_HUB_URL              public URL (default http://127.0.0.1:8000)
#   IMAGING_HUB_STATE            folder of the database and cookie secret (default ./data/hub)
#   IMAGING_HUB_DASHBOARDS_PORT  127.0.0.1 port of the dashboards' service (default 8867)
#   IMAGING_DASK_GATEWAY_TOKEN   the gateway's Hub API token, when a Dask Gateway runs beside the Hub
#   IMAGING_STORE, IMAGING_DEID_SECRET, IMAGING_DASK_*, DASK_GATEWAY__ADDRESS  passed on to users
#
# Site changes go in a file of your own that starts with
#     load_subconfig("/path/to/deploy/jupyterhub/jupyterhub_config.py")
# and is passed with `imaging-lab hub --config yours.py` (demo_config.py is one). docs/deploy.md has
# the walk-through and the Kubernetes (daskhub) recipe; docs/security.md the roles and their tests.

from imaging_lib.hub import config as imaging

c = get_config()  # noqa: F821  (defined by JupyterHub when it loads this file)
site = imaging.HubSite.from_settings()
site.state.mkdir(parents=True, exist_ok=True)
gateway = site.gateway_token is not None

# --- Where the Hub listens and keeps its state ------------------------------------------------------
c.JupyterHub.bind_url = site.public_url
c.JupyterHub.db_url = site.db_url
c.JupyterHub.cookie_secret_file = site.cookie_secret_file
c.ConfigurableHTTPProxy.command = imaging.proxy_command()  # configurable-http-proxy from package.json
c.ConfigurableHTTPProxy.pid_file = str(site.state / "jupyterhub-proxy.pid")  # imaging_lib.hub.server stops a stray one

# --- Who may sign in ------------------------------------------------------------------------------------
# PAM: the machine's own accounts. Allow them one by one in the Hub's admin page (or list them here).
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allow_existing_users = True
# c.Authenticator.admin_users = {"your-account"}      # Hub admins: manage users and groups at /hub/admin
#
# NativeAuthenticator: people sign up, an admin approves them (pip install jupyterhub-nativeauthenticator):
#   c.JupyterHub.authenticator_class = "native"
#   c.NativeAuthenticator.open_signup = False
#
# OAuthenticator: your organisation's sign-in (GitHub, GitLab, Google, Azure AD, Keycloak...;
# pip install oauthenticator). Groups can come from the identity provider:
#   c.JupyterHub.authenticator_class = "generic-oauth"
#   c.GenericOAuthenticator.client_id = "imaging-lab"       # the secret: $OAUTH_CLIENT_SECRET
#   c.GenericOAuthenticator.oauth_callback_url = "https://hub.example.org/hub/oauth_callback"
#   c.GenericOAuthenticator.authorize_url / token_url / userdata_url = "https://idp.example.org/..."
#   c.GenericOAuthenticator.manage_groups = True
#   c.GenericOAuthenticator.auth_state_groups_key = "oauth_user.groups"
#   c.GenericOAuthenticator.allowed_groups = {"researcher", "reviewer", "viewer", "uploader", "admin"}

# --- Roles: the Hub groups researcher, reviewer, viewer, uploader and admin (imaging_lib/identity.py) -
# Put people in them at /hub/admin, through the Hub's REST API, with load_groups in your own file
# (imaging.role_groups({"researcher": ["alice"], "viewer": ["bob"]})), or from OAuthenticator.
c.JupyterHub.load_roles = imaging.hub_roles(gateway=gateway)

# --- JupyterLab for the roles with notebooks (researcher, admin) -----------------------------------
# LocalProcessSpawner runs each user's server as their own system account (PAM users exist there).
# On Kubernetes: KubeSpawner (docs/deploy.md).
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = imaging.singleuser_command()
c.Spawner.default_url = "/lab"
c.Spawner.environment = imaging.spawner_environment(gateway=gateway)
c.Spawner.pre_spawn_hook = imaging.refuse_spawn_without_notebooks
if gateway:  # the server's own token may ask the gateway for its user's cluster
    c.Spawner.server_token_scopes = [
        "users:activity!user",
        "access:servers!server",
        f"access:services!service={imaging.GATEWAY}",
    ]
c.JupyterHub.default_url = imaging.landing_url

# --- The dashboards, and the gateway --------------------------------------------------------------------
c.JupyterHub.services = [imaging.dashboards_service(site)]
if gateway:
    c.JupyterHub.services.append(imaging.gateway_service(site))
