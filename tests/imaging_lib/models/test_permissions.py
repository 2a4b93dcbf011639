"""The one role check of training and the registry: promote needs admin, train and cancel need researcher."""

from __future__ import annotations

import pytest

from imaging_lib.errors import NotAllowed
from imaging_lib.models.permissions import ACTION_ROLES, allowed, require_role, set_role_lookup


def test_a_single_user_installation_may_do_everything(monkeypatch):
    monkeypatch.setenv("IMAGING_USER", "solo")
    assert all(allowed(action) for action in ACTION_ROLES)
    assert require_role("promote") == "solo"


def test_a_team_lookup_decides_per_action():
    set_role_lookup({"vera": ["viewer"], "rosa": ["researcher"], "ada": ["admin"]}.get)
    try:
        assert not allowed("train", "vera") and not allowed("cancel", "vera") and not allowed("promote", "vera")
        assert allowed("train", "rosa") and allowed("cancel", "rosa") and not allowed("promote", "rosa")
        assert allowed("promote", "ada") and not allowed("train", "ada")
        with pytest.raises(NotAllowed, match="vera: train needs the researcher role"):
            require_role("train", "vera")
        assert require_role("cancel", "rosa") == "rosa"
    finally:
        set_role_lookup(None)
    with pytest.raises(ValueError, match="unknown action"):
        allowed("delete")
