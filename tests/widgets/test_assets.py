"""One front-end convention: each small widget's ES module (and styles) is the file named after its module."""

from __future__ import annotations

import importlib
import inspect

import anywidget
import pytest

from widgets.assets import JS, STATIC


@pytest.mark.parametrize("module_name", ["file_drop", "download_button", "record_table"])
def test_a_widget_loads_the_files_named_after_its_module(module_name):
    module = importlib.import_module(f"widgets.{module_name}")
    (widget,) = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, anywidget.AnyWidget) and cls.__module__ == module.__name__
    ]
    assert str(widget._esm) == (JS / f"{module_name}.js").read_text(encoding="utf-8")
    css = JS / f"{module_name}.css"
    if css.exists():
        assert str(widget._css) == css.read_text(encoding="utf-8")
    else:
        assert not getattr(widget, "_css", None)


def test_the_asset_folders_are_the_package_data_folders():
    import widgets

    package = inspect.getfile(widgets).rsplit("/", 1)[0]
    assert str(JS) == f"{package}/js" and str(STATIC) == f"{package}/static"
    assert sorted(path.suffix for path in JS.iterdir() if path.stem == "file_drop") == [".css", ".js"]
