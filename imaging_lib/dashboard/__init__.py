"""The Voilà dashboards: the notebooks in ``apps/`` and the server that runs them behind a token."""

from .server import DashboardServer, apps_dir, dashboard_url, serve_dashboard, start_dashboard

__all__ = ["DashboardServer", "apps_dir", "dashboard_url", "serve_dashboard", "start_dashboard"]
