"""A team deployment: JupyterHub (sign-in, roles, JupyterLab, the dashboards as a service) and Dask Gateway.

:mod:`~imaging_lib.hub.config` holds the pieces of ``deploy/jupyterhub/jupyterhub_config.py``;
:mod:`~imaging_lib.hub.server` starts the Hub (and a gateway) for ``imaging-lab hub``.
"""
