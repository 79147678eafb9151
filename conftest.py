"""Collection rules for the whole repository (tests/ has its own fixtures).

Notebooks declare what they need in their metadata (``"labkit": {"requires": [...]}``,
e.g. ``"docker"``, ``"root"``); where that is missing here, nbval skips them with the
reason instead of failing on a machine that cannot run them.
"""

from __future__ import annotations

import os

import nbformat
import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from labkit.docker import missing_requirements

    missing: dict[str, list[str]] = {}
    for item in items:
        path = str(getattr(item, "fspath", ""))
        if not path.endswith(".ipynb"):
            continue
        if path not in missing:
            needs = nbformat.read(path, as_version=4).metadata.get("labkit", {}).get("requires", [])
            missing[path] = missing_requirements(needs)
        if missing[path]:
            item.add_marker(pytest.mark.skip(
                reason=f"{os.path.basename(path)} needs {', '.join(missing[path])}"))
