"""The headless Chromium session Phase 4's storefront check runs in (varai_deploy.widgets.browser)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from varai_deploy.widgets.browser import headless_chromium


@pytest.fixture
def temp_dir(monkeypatch) -> Iterator[Path]:
    """A TMPDIR of the test's own, short (pytest's tmp_path is too deep for Chromium's socket path)."""
    with tempfile.TemporaryDirectory(prefix="vb", dir="/tmp") as short:
        monkeypatch.setenv("TMPDIR", short)
        monkeypatch.setattr(tempfile, "tempdir", None)
        yield Path(short)


def test_a_browser_session_leaves_nothing_in_the_temp_dir(temp_dir):
    """Every release's storefront check opens sessions: none may leave a profile or Chromium's socket
    directory (``org.chromium.Chromium.*``) behind."""
    with headless_chromium() as driver:
        driver.get("data:text/html,<title>shop</title>")
        assert driver.title == "shop"
        assert list(temp_dir.iterdir()), "the session's scratch directory is under TMPDIR while it runs"
    assert list(temp_dir.iterdir()) == []
