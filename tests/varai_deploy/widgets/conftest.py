"""A widget release built once per test module (the build takes milliseconds; the tree is only read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.varai_deploy.widgets.support import VERSION
from varai_deploy.widgets import Manifest, build_release


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    out = tmp_path_factory.mktemp("widgets") / "release"
    return out, build_release(VERSION, out)


@pytest.fixture(scope="module")
def out_dir(built: tuple[Path, Manifest]) -> Path:
    return built[0]


@pytest.fixture(scope="module")
def manifest(built: tuple[Path, Manifest]) -> Manifest:
    return built[1]
