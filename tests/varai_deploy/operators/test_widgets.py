"""WidgetSummaryOperator: which marketplaces are live and where, and a failed run naming the others."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from varai_deploy.operators.widgets import WidgetSummaryOperator

GROUP = "widgets.marketplace"
HTML_CDN = {
    "channel": "html",
    "destination": "cdn",
    "outcome": "published",
    "location": "http://cdn/widgets/html/1.0.0/js/varai-widget.min.js",
    "detail": "integrity sha384-abc",
}


class TaskInstance:
    """XComs as the release run left them: {(task_id, map_index, key): value}."""

    def __init__(self, xcoms: dict) -> None:
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str, map_indexes: int | None = None, key: str = "return_value"):
        return self.xcoms.get((task_ids, -1 if map_indexes is None else map_indexes, key))


def summary(channels: list[str]) -> WidgetSummaryOperator:
    return WidgetSummaryOperator(
        task_id="summary",
        channels=channels,
        group_id=GROUP,
        gate_task_id="widgets.backend_released",
        build_task_id="widgets.build",
    )


def released(more: dict | None = None) -> TaskInstance:
    gate_and_build = {("widgets.backend_released", -1, "return_value"): True, ("widgets.build", -1, "return_value"): {}}
    return TaskInstance({**gate_and_build, **(more or {})})


def test_it_runs_whatever_each_channel_did():
    assert summary([]).trigger_rule == "all_done"


def test_after_a_rolled_back_backend_there_is_nothing_to_summarise():
    with pytest.raises(AirflowSkipException, match="backend release did not pass"):
        summary(["html"]).execute({"ti": TaskInstance({})})


def test_a_failed_build_fails_the_summary():
    ti = TaskInstance({("widgets.backend_released", -1, "return_value"): True})
    with pytest.raises(AirflowException, match="widgets.build failed: no widget was published"):
        summary(["html"]).execute({"ti": ti})


def test_live_channels_are_listed_and_a_failed_one_fails_the_run_by_name(capsys):
    ti = released(
        {
            (f"{GROUP}.publish", 0, "return_value"): [HTML_CDN],
            (f"{GROUP}.verify", 0, "return_value"): {"channel": "html", "checks": ["..."]},
            (f"{GROUP}.storefront", 0, "return_value"): {"pages": {}},
            (f"{GROUP}.publish", 1, "error"): "magento -> marketplace: refused the key of 'varai_magento_marketplace'",
        }
    )
    with pytest.raises(AirflowException, match=r"failed for magento \(live: html\).*clear the failed"):
        summary(["html", "magento"]).execute({"ti": ti})
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("VARAI-WIDGET")]
    assert printed == [
        "VARAI-WIDGET html cdn published http://cdn/widgets/html/1.0.0/js/varai-widget.min.js  (integrity sha384-abc)",
        "VARAI-WIDGET magento FAILED magento -> marketplace: refused the key of 'varai_magento_marketplace'",
    ]


def test_a_channel_published_but_not_verified_is_not_live(capsys):
    ti = released({(f"{GROUP}.publish", 0, "return_value"): [HTML_CDN]})
    with pytest.raises(AirflowException, match="failed for html"):
        summary(["html"]).execute({"ti": ti})
    assert "VARAI-WIDGET html FAILED did not complete" in capsys.readouterr().out


def test_a_backend_only_release_says_so(capsys):
    assert summary([]).execute({"ti": released()}) == {}
    assert "no marketplace was selected" in capsys.readouterr().out


def test_the_storefront_figures_are_in_the_summary_and_a_failed_storefront_is_not_live(capsys):
    verified = {(f"{GROUP}.publish", 0, "return_value"): [HTML_CDN], (f"{GROUP}.verify", 0, "return_value"): {}}
    shop = {"pages": {"cdn script tag": {"load_p95_seconds": 0.071, "loads": 5, "search": "3 frames from v1.0.0"}}}
    summary(["html"]).execute({"ti": released({**verified, (f"{GROUP}.storefront", 0, "return_value"): shop})})
    line = "VARAI-WIDGET html storefront checked cdn script tag: load p95 0.07 s over 5 visits; search 3 frames"
    assert f"{line} from v1.0.0" in capsys.readouterr().out
    broken = {
        **verified,
        (f"{GROUP}.storefront", 0, "error"): "storefront: npm package: the search was answered by v0.9",
    }
    with pytest.raises(AirflowException, match="failed for html"):
        summary(["html"]).execute({"ti": released(broken)})
    assert (
        "VARAI-WIDGET html FAILED storefront: npm package: the search was answered by v0.9" in capsys.readouterr().out
    )


def test_a_storefront_task_that_left_nothing_is_not_live(capsys):
    """A storefront task always returns a value: none means it crashed before saying why."""
    verified = {(f"{GROUP}.publish", i, "return_value"): [HTML_CDN] for i in (0, 1)}
    verified |= {(f"{GROUP}.verify", i, "return_value"): {} for i in (0, 1)}
    checked = {(f"{GROUP}.storefront", 1, "return_value"): {"pages": {}}}
    with pytest.raises(AirflowException, match=r"failed for html \(live: shopify\)"):
        summary(["html", "shopify"]).execute({"ti": released({**verified, **checked})})
    assert "VARAI-WIDGET html FAILED storefront: did not complete (see its log)" in capsys.readouterr().out
