"""A pooled dashboard kernel taking its visitor: identity bound once, panels refreshed."""

from __future__ import annotations

import json
import os

import pytest

from imaging_lib import handout, identity
from imaging_lib.dashboard.hub_auth import Visitor
from imaging_lib.dashboard.pool import hand_out_code
from imaging_lib.errors import PermissionDenied


def test_hand_out_binds_the_visitor_once_and_refreshes_the_panels(monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))  # bind writes the process environment
    for name in ("IMAGING_USER", "JUPYTERHUB_USER", "IMAGING_USER_GROUPS", "JUPYTERHUB_API_TOKEN"):
        os.environ.pop(name, None)
    os.environ["IMAGING_ACCESS"] = "team"  # a pooled kernel of the Hub's dashboards: nobody yet
    monkeypatch.setattr(handout, "_listeners", [])
    monkeypatch.setattr(identity, "_bound_listeners", [])
    assert not identity.current_identity().can("view")
    refreshed = []
    handout.on_hand_out(lambda: refreshed.append(identity.current_identity().name))
    exec(hand_out_code(Visitor("bob", ("viewer",), "bobs-token")), {})  # as the server runs it
    bob = identity.current_identity()
    assert (bob.name, bob.roles, refreshed) == ("bob", ("viewer",), ["bob"])
    with pytest.raises(PermissionDenied):  # a kernel serves one visitor
        handout.hand_out(json.dumps({"name": "alice", "groups": ["admin"], "token": ""}))
    assert identity.current_identity().name == "bob"


def test_the_token_holders_hand_out_only_refreshes(monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))
    os.environ.pop("IMAGING_ACCESS", None)
    monkeypatch.setattr(handout, "_listeners", [])
    refreshed = []
    handout.on_hand_out(lambda: refreshed.append(True))
    handout.hand_out("null")
    assert refreshed == [True] and not identity.current_identity().team
