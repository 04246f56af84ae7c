"""Unit tests first, then the integration modules, whatever order pytest-randomly shuffled them into
(a stable sort keeps its order within each part): the integration sandbox, session-scoped and under
load, starts with the first integration test and stops after the last, never beside the unit tests."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("integration") is not None)
