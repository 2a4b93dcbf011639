"""Every environment variable is read through settings.py and listed, as in SETTINGS, in the README's table."""

from __future__ import annotations

import re
from pathlib import Path

from imaging_lib import settings
from imaging_lib.settings import SETTINGS, Setting

ROOT = Path(__file__).resolve().parents[2]


def _readme_rows() -> list[tuple[str, str, str]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Settings\n") :]
    section = section[: section.index("\n## ", 1)]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| `")]
    return [(name.strip(" `"), default.strip(" `"), meaning.strip()) for name, default, meaning in rows]


def test_the_readme_table_lists_every_setting_with_its_default_and_meaning():
    expected = [(s.name, s.default if s.default is not None else "unset", s.meaning) for s in SETTINGS]
    assert _readme_rows() == expected


def test_every_imaging_variable_in_the_code_is_a_setting():
    named = {s.name for s in SETTINGS}
    found = {
        (path.relative_to(ROOT).as_posix(), name)
        for package in ("imaging_lib", "widgets")
        for path in (ROOT / package).rglob("*.py")
        for name in re.findall(r"\bIMAGING_[A-Z_]+\b", path.read_text(encoding="utf-8"))
        if not name.endswith("_")  # ``IMAGING_HUB_*`` in a docstring names a family of settings
    }
    assert {name for _, name in found} <= named, sorted(item for item in found if item[1] not in named)
    assert len(set(named)) == len(SETTINGS)


def test_a_setting_is_read_when_asked_and_an_empty_value_is_unset(monkeypatch):
    setting = Setting("IMAGING_TEST_ONLY", "fallback", "a setting of this test")
    monkeypatch.delenv(setting.name, raising=False)
    assert settings.read(setting) == "fallback"
    monkeypatch.setenv(setting.name, "")
    assert settings.read(setting) == "fallback"
    monkeypatch.setenv(setting.name, "given")
    assert settings.read(setting) == "given"
    assert settings.read(setting, {setting.name: "mapping"}) == "mapping"
    assert settings.read(settings.DASK_SCHEDULER, {}) is None
