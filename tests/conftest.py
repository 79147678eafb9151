"""Shared fixtures: a fresh lab per test, and a check that nothing is left behind.

Every test runs under ``no_residue``: the host's interfaces, mounts and this process's
descendants are recorded before the test and must be the same after it.
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from labkit import Lab

from helpers import descendants, host_links, host_mounts, wait_until


@pytest.fixture(autouse=True)
def no_residue() -> Iterator[None]:
    links, mounts = host_links(), host_mounts()
    before = descendants(os.getpid())
    yield
    assert wait_until(lambda: descendants(os.getpid()) <= before), \
        f"processes left behind: {descendants(os.getpid()) - before}"
    assert host_links() == links, f"host interfaces changed: {host_links() ^ links}"
    assert host_mounts() == mounts, "host mount table changed"


@pytest.fixture
def lab(tmp_path) -> Iterator[Lab]:
    with Lab("test", workdir=tmp_path) as made:
        yield made


def is_root() -> bool:
    return os.geteuid() == 0
