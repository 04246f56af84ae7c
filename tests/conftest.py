"""Test order: the unit tests first, then the integration modules heaviest first, each in the order
pytest-randomly shuffled it into (a stable sort).

``make test`` runs the unit tests alone, then the integration modules on two pytest-xdist workers
(``--dist loadfile --no-loadscope-reorder``: a module to a worker, handed out in this order, each
worker with a sandbox and Airflow of its own). Handing out the longest modules first lets both
workers end together. A plain ``pytest`` keeps the unit tests first, so its integration sandbox,
under load, never runs beside them.
"""

from __future__ import annotations

import pytest

#: Seconds each integration module takes on the 2-core machine (a full run's ``--durations=0``, summed);
#: a module not listed counts as a heavy one, so a new module starts early rather than last.
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_order)
