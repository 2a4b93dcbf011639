"""The pieces of the Hub configuration: the dashboards service, roles, what users' processes are given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imaging_lib.hub.config import (
    DASHBOARDS,
    GATEWAY,
    HubSite,
    dashboards_service,
    gateway_service,
    hub_roles,
    platform_environment,
    proxy_command,
    role_groups,
)
from imaging_lib.identity import ROLES

SITE = HubSite("https://hub.example.org", Path("/srv/hub"), 8867, gateway_token="g" * 64)


def test_the_site_comes_from_the_settings(tmp_path):
    site = HubSite.from_settings(
        {
            "IMAGING_HUB_URL": "http://127.0.0.1:9000/",
            "IMAGING_HUB_STATE": str(tmp_path),
            "IMAGING_HUB_DASHBOARDS_PORT": "9001",
        }
    )
    assert site == HubSite("http://127.0.0.1:9000", tmp_path.resolve(), 9001, None)
    assert site.db_url == f"sqlite:///{tmp_path.resolve() / 'jupyterhub.sqlite'}"
    with pytest.raises(ValueError, match="port number"):
        HubSite.from_settings({"IMAGING_HUB_DASHBOARDS_PORT": "http"})


def test_the_dashboards_service_signs_in_through_the_hub_under_its_prefix(monkeypatch):
    monkeypatch.setenv("IMAGING_DASHBOARD_TOKEN", "single-user-token-xyz")
    monkeypatch.setenv("IMAGING_DEID_SECRET", "deid-secret-0123456789")
    monkeypatch.setenv("IMAGING_STORE", "gs://bucket/store")
    monkeypatch.setenv("IMAGING_DASK_GATEWAY_TOKEN", SITE.gateway_token)
    monkeypatch.setenv("IMAGING_USER", "whoever-started-the-hub")
    service = dashboards_service(SITE, max_kernels=5)
    command = service["command"]
    assert service["name"] == DASHBOARDS and service["url"] == "http://127.0.0.1:8867"
    assert command[1:3] == ["-m", "imaging_lib.dashboard.voila_app"]
    for argument in (
        "--DashboardVoila.hub=True",
        "--Voila.base_url=/services/dashboards/",
        "--Voila.ip=127.0.0.1",
        "--port=8867",
        "--DashboardVoila.allowed_hosts=hub.example.org",
        "--DashboardKernelManager.max_kernels=5",
        "--HubOAuth.cache_max_age=60",
    ):
        assert argument in command, argument
    environment = service["environment"]
    assert environment["IMAGING_ACCESS"] == "team" and environment["IMAGING_DASK_PROFILE"] == "gateway"
    assert environment["IMAGING_STORE"] == "gs://bucket/store"
    assert environment["IMAGING_DEID_SECRET"] == "deid-secret-0123456789"  # uploads are de-identified there
    everything = json.dumps(service)
    assert "single-user-token-xyz" not in everything and SITE.gateway_token not in everything
    assert "whoever-started-the-hub" not in everything  # each kernel gets its visitor instead
    assert service["oauth_client_allowed_scopes"] == [f"access:services!service={GATEWAY}"]


def test_a_local_store_is_made_absolute_for_the_kernels(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMAGING_STORE", "data/store")
    environment = dashboards_service(HubSite("http://127.0.0.1:8000", tmp_path, 8867))["environment"]
    assert environment["IMAGING_STORE"] == str(tmp_path / "data" / "store")
    assert "IMAGING_DASK_PROFILE" not in environment  # no gateway: the default profile


def test_the_gateway_is_a_token_holding_service():
    assert gateway_service(SITE) == {"name": GATEWAY, "api_token": SITE.gateway_token, "display": False}
    with pytest.raises(ValueError, match="IMAGING_DASK_GATEWAY_TOKEN"):
        gateway_service(HubSite("http://h", Path("/"), 1))


def test_every_user_reaches_the_dashboards_and_computing_roles_reach_the_gateway():
    user, gateway = hub_roles(gateway=True)
    assert user["name"] == "user" and user["scopes"] == ["self", "access:services!service=dashboards"]
    assert gateway["scopes"] == ["access:services!service=dask-gateway"]
    assert gateway["groups"] == ["researcher", "reviewer", "admin"]  # batches, segmentation, training
    assert len(hub_roles(gateway=False)) == 1


def test_role_groups_name_every_role_and_refuse_others():
    groups = role_groups({"viewer": ["bob"], "researcher": ["alice", "ada"]})
    assert set(groups) == set(ROLES)
    assert groups["researcher"] == {"users": ["ada", "alice"]} and groups["admin"] == {"users": []}
    with pytest.raises(ValueError, match="unknown role groups"):
        role_groups({"superuser": ["eve"]})


def test_users_processes_get_the_platform_settings_but_no_secret_nor_identity():
    environment = platform_environment(
        {
            "IMAGING_STORE": "/srv/store",
            "IMAGING_DASHBOARD_TOKEN": "t",
            "IMAGING_DASK_GATEWAY_TOKEN": "g",
            "IMAGING_USER_GROUPS": "admin",
            "DASK_GATEWAY__ADDRESS": "http://127.0.0.1:8790",
            "JUPYTERHUB_API_TOKEN": "service-token",
            "AWS_SECRET_ACCESS_KEY": "k",
        },
        gateway=True,
    )
    assert environment == {
        "IMAGING_STORE": "/srv/store",
        "DASK_GATEWAY__ADDRESS": "http://127.0.0.1:8790",
        "IMAGING_ACCESS": "team",
        "IMAGING_DASK_PROFILE": "gateway",
    }


def test_the_proxy_is_the_projects_configurable_http_proxy():
    command = proxy_command()
    assert command[0].endswith("node_modules/.bin/configurable-http-proxy") and Path(command[0]).exists()
