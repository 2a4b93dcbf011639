"""What a visitor's kernel is told, and what it never gets: the service's Hub credentials."""

from __future__ import annotations

from imaging_lib.dashboard.hub_auth import Visitor, kernel_id_of, without_hub_credentials
from imaging_lib.identity import current_identity


def test_a_kernel_learns_its_visitor_and_nothing_of_the_service():
    service = {
        "PATH": "/usr/bin",
        "IMAGING_STORE": "/srv/store",
        "JUPYTERHUB_API_TOKEN": "service-token",
        "JUPYTERHUB_CLIENT_ID": "service-dashboards",
        "JPY_API_TOKEN": "service-token",
        "IMAGING_USER": "hub-operator",
        "IMAGING_USER_GROUPS": "admin",
        "IMAGING_ACCESS": "team",
    }
    environment = {
        **without_hub_credentials(service),
        **Visitor("bob", ("staff", "viewer"), "bobs-oauth-token").kernel_environment(),
    }
    assert "service-token" not in environment.values() and "hub-operator" not in environment.values()
    assert environment["JUPYTERHUB_API_TOKEN"] == "bobs-oauth-token"
    assert environment["IMAGING_STORE"] == "/srv/store" and environment["PATH"] == "/usr/bin"
    bob = current_identity(environment)
    assert (bob.name, bob.roles, bob.team) == ("bob", ("viewer",), True)
    assert not bob.can("upload")


def test_a_visitor_without_a_token_gets_no_token_variable():
    assert "JUPYTERHUB_API_TOKEN" not in Visitor("erin", ("reviewer",), "").kernel_environment()


class _Handler:
    def __init__(self, path_args=(), path_kwargs=None):
        self.path_args, self.path_kwargs = list(path_args), dict(path_kwargs or {})


def test_the_kernel_id_is_found_in_named_and_positional_routes():
    assert kernel_id_of(_Handler(path_kwargs={"kernel_id": "k-1"})) == "k-1"
    assert kernel_id_of(_Handler(path_args=["k-2"])) == "k-2"  # voila/api/shutdown/(.*)
    assert kernel_id_of(_Handler()) == ""
