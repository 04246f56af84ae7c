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

#: Seconds each integration module takes on the 2-core machine beside another (the "seconds per module"
#: a full ``make test`` prints at its end);
#: a module not listed counts as a heavy one, so a new module starts early rather than last.
INTEGRATION_MODULE_SECONDS = {
    "test_release_faults": 1300,
    "test_maintenance": 900,
    "test_cloud_run_release": 750,
    "test_dr_drill": 720,
    "test_rollback": 660,
    "test_release_dag": 650,
    "test_rest_api": 600,
    "test_ui_browser": 500,
    "test_widgets": 500,
    "test_release_people": 500,
    "test_airflow_cluster": 330,
    "test_backups": 120,
    "test_executor": 85,
    "test_backups_cloud_sql": 50,
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
