"""release_cli: the `airflow dags test` it runs, and what `make demo` prints from the output it captured."""

import json

from varai_deploy.config import REPO_ROOT
from varai_deploy.release_cli import dags_test_command, failure_lines, widget_lines

LOG = """\
2026-11-29T04:00:01Z [info] ::group::Log message source details
VARAI-WIDGET html cdn published http://127.0.0.1:18061/widgets/html/1.0.0/js/varai-widget.min.js  (integrity sha384-abc)
VARAI-WIDGET html cdn published http://127.0.0.1:18061/widgets/html/1.0.0/js/varai-widget.min.js  (integrity sha384-abc)
VARAI-WIDGET html npm unchanged @varai/widget@1.0.0 (http://127.0.0.1:18062/)
VARAI-WIDGET magento FAILED PublishAuthError: magento -> marketplace: refused the key of 'varai_magento_marketplace'
varai_deploy.widgets.publishing.PublishAuthError: magento -> marketplace: refused the key
"""


def test_widget_rows_are_listed_once_each_as_a_table():
    # The task's stdout reaches the captured output once per print; a repeated row is shown once.
    assert widget_lines(LOG) == [
        "html         cdn          published  http://127.0.0.1:18061/widgets/html/1.0.0/js/varai-widget.min.js"
        "  (integrity sha384-abc)",
        "html         npm          unchanged  @varai/widget@1.0.0 (http://127.0.0.1:18062/)",
        "magento      FAILED       PublishAuthError: magento -> marketplace: refused the key of "
        "'varai_magento_marketplace'",
    ]


def test_a_log_without_widgets_prints_no_table():
    assert widget_lines("Release v1.0.0 ... done\n") == []


def test_failures_name_the_error_and_its_message():
    assert failure_lines(LOG) == ["magento -> marketplace: refused the key"]


def test_dags_test_parses_only_the_dag_file_named_after_the_dag(tmp_path):
    cmd = dags_test_command("ai_discovery_release", {"version": "v1.0.1"}, {})
    assert cmd[1:4] == ["dags", "test", "ai_discovery_release"]
    assert cmd[cmd.index("-f") + 1] == str(REPO_ROOT / "dags" / "ai_discovery_release.py")
    assert json.loads(cmd[cmd.index("-c") + 1]) == {"version": "v1.0.1"}
    # A DAG folder of its own is honoured; a DAG not in a file of its name is found by parsing them all.
    (tmp_path / "other.py").write_text("")
    folder = {"AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path)}
    assert dags_test_command("other", {}, folder)[-2:] == ["-f", str(tmp_path / "other.py")]
    assert "-f" not in dags_test_command("ai_discovery_release", {}, folder)
