"""Who acts and what their roles allow: single-user mode, team roles from Hub groups, refusals, late binding."""

from __future__ import annotations

import getpass
import logging
import os

import pytest

from imaging_lib import identity
from imaging_lib.errors import PermissionDenied
from imaging_lib.identity import PERMISSIONS, ROLES, Identity, can, current_identity, identity_for, require
from imaging_lib.store import records

TEAM_VARIABLES = ("IMAGING_ACCESS", "IMAGING_USER", "IMAGING_USER_GROUPS", "JUPYTERHUB_USER", "JUPYTERHUB_API_TOKEN")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in TEAM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(identity, "_bound_listeners", [])


def team(monkeypatch, user: str, groups: str) -> None:
    monkeypatch.setenv("IMAGING_ACCESS", "team")
    monkeypatch.setenv("IMAGING_USER", user)
    monkeypatch.setenv("IMAGING_USER_GROUPS", groups)


def test_one_person_on_a_laptop_holds_every_permission():
    me = current_identity()
    assert me.name == getpass.getuser() and not me.team
    assert all(me.can(permission) for permission in PERMISSIONS)
    assert me.roles == ("admin",) and me.describe().endswith("(single-user)")


@pytest.mark.parametrize(
    ("groups", "allowed", "refused"),
    [
        ("viewer", {"view"}, {"upload", "run_batch", "segment", "review", "promote", "select_cluster", "notebooks"}),
        ("viewer,uploader", {"view", "upload"}, {"run_batch", "review", "promote"}),
        ("reviewer", {"view", "segment", "review"}, {"upload", "run_batch", "promote", "notebooks"}),
        (
            "researcher",
            {"view", "upload", "run_batch", "segment", "notebooks", "train", "export"},
            {"review", "promote"},
        ),
        ("admin", set(PERMISSIONS), set()),
        (
            "researcher, reviewer ,",
            {"view", "upload", "run_batch", "segment", "notebooks", "train", "export", "review"},
            {"promote", "manage_keys"},
        ),
    ],
)
def test_team_roles_come_from_the_groups_the_server_set(monkeypatch, groups, allowed, refused):
    team(monkeypatch, "alice", groups)
    me = current_identity()
    assert me.name == "alice" and me.team
    assert {permission for permission in PERMISSIONS if me.can(permission)} == allowed
    assert not any(me.can(permission) for permission in refused)


def test_groups_that_are_not_roles_grant_nothing_and_no_role_means_not_even_view(monkeypatch):
    team(monkeypatch, "carol", "staff,jupyterhub-users")
    me = current_identity()
    assert me.roles == () and me.permissions == frozenset()
    assert not me.can("view") and me.describe() == "carol (no role)"


def test_team_mode_never_falls_back_to_the_operating_system_user(monkeypatch):
    monkeypatch.setenv("IMAGING_ACCESS", "team")
    me = current_identity()
    assert me.name == "" and me.permissions == frozenset()
    assert records.current_user() == ""


def test_a_refusal_names_the_user_the_roles_that_would_do_and_is_logged(monkeypatch, caplog):
    team(monkeypatch, "bob", "viewer")
    with caplog.at_level(logging.WARNING, logger="imaging_lib.identity"), pytest.raises(PermissionDenied) as refused:
        require("review")
    message = str(refused.value)
    assert message.startswith("user bob: may not accept, reject or edit results and labels")
    assert "reviewer or admin" in message and "has viewer" in message
    assert "bob" in caplog.text and "refused" in caplog.text


def test_roles_can_be_required_by_name_and_unknown_names_are_an_error(monkeypatch):
    team(monkeypatch, "dave", "admin")
    assert require("admin").name == "dave"
    assert can("admin") and not can("viewer")
    with pytest.raises(ValueError, match="unknown permission or role 'reveiw'"):
        can("reveiw")


def test_an_explicit_identity_is_judged_not_the_process_one(monkeypatch):
    team(monkeypatch, "dave", "admin")
    with pytest.raises(PermissionDenied):
        require("upload", identity_for("bob", ["viewer"]))
    assert require("upload", Identity("x", frozenset(), team=False)).name == "x"


def test_an_unknown_access_mode_is_refused(monkeypatch):
    monkeypatch.setenv("IMAGING_ACCESS", "open")
    with pytest.raises(ValueError, match="IMAGING_ACCESS"):
        current_identity()


def test_every_permission_is_granted_by_some_role_and_admin_holds_them_all():
    granted = set().union(*(ROLES[role] for role in ROLES if role != "admin"))
    assert set(PERMISSIONS) - granted == {"promote", "manage_keys", "select_cluster"}
    assert ROLES["admin"] == frozenset(PERMISSIONS)


def test_bind_gives_a_prestarted_kernel_its_visitor_once(monkeypatch):
    seen = []
    identity.on_bind(seen.append)
    monkeypatch.setattr(os, "environ", dict(os.environ))  # bind writes the process environment
    bound = identity.bind("erin", ["reviewer"], hub_token="erin-token")
    assert bound == identity_for("erin", ["reviewer"]) and seen == [bound]
    assert current_identity().can("review") and records.current_user() == "erin"
    assert os.environ["JUPYTERHUB_API_TOKEN"] == "erin-token"
    assert identity.bind("erin", ["reviewer", "researcher"]).can("run_batch")  # the same user: updated
    with pytest.raises(PermissionDenied, match="already serves erin"):
        identity.bind("mallory", ["admin"])
    assert current_identity().name == "erin"
