"""Test order: the unit tests first, then the integration modules heaviest first, each in the order
pytest-randomly shuffled it into (a stable sort).

``make test`` runs the unit tests (on two pytest-xdist workers, each with a loopback of its own, where
it runs as root), then the integration modules on two workers
(``--dist loadfile --no-loadscope-reorder``: a module to a worker, handed out in this order, each
worker with a sandbox and Airflow of its own). Handing out the longest modules first lets both
workers end together. A plain ``pytest`` keeps the unit tests first, so its integration sandbox,
under load, never runs beside them.
"""

from __future__ import annotations

import os

import pytest

#: Weights for handing out the integration modules, heaviest first; a module not listed counts as a heavy
#: one, so a new module starts early rather than last. They are old figures (the UI browser module now
#: takes ~450 s, the faults module ~1300): handed out by today's figures, test_dr_drill followed
#: test_release_faults on one worker and inherited a live revision left failing on purpose, which
#: its steady fixture now heals. The order below is the one the last green CI runs used; re-weight
#: from the "seconds per module" a full run prints, then run the whole suite before landing it.
INTEGRATION_MODULE_SECONDS = {
    "test_maintenance": 730,
    "test_release_faults": 470,
    "test_cloud_run_release": 400,
    "test_dr_drill": 410,
    "test_release_dag": 230,
    "test_rollback": 225,
    "test_release_people": 195,
    "test_airflow_cluster": 190,
    "test_widgets": 175,
    "test_rest_api": 155,
    "test_ui_browser": 85,
    "test_backups": 80,
    "test_executor": 85,
    "test_backups_cloud_sql": 45,
    "test_local_airflow": 30,
}
UNLISTED_MODULE_SECONDS = 300


def _order(item: pytest.Item) -> tuple[bool, int]:
    if item.get_closest_marker("integration") is None:
        return False, 0
    return True, -INTEGRATION_MODULE_SECONDS.get(item.path.stem, UNLISTED_MODULE_SECONDS)


def pytest_configure(config: pytest.Config) -> None:
    """``make test`` runs the unit tests on pytest-xdist workers, each with a loopback of its own."""
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("VARAI_TEST_OWN_LOOPBACK") == "1":
        from tests.support.own_loopback import enter_own_loopback

        enter_own_loopback()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_order)


#: Seconds spent per test module (setup, call and teardown), reported at the end of the run: the figures
#: INTEGRATION_MODULE_SECONDS is kept up to date from.
_module_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    module = report.nodeid.split("::", 1)[0]
    _module_seconds[module] = _module_seconds.get(module, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if not _module_seconds:
        return
    terminalreporter.section("seconds per module, slowest 20")
    for module, seconds in sorted(_module_seconds.items(), key=lambda kv: -kv[1])[:20]:
        terminalreporter.write_line(f"{seconds:8.1f}s  {module}")
