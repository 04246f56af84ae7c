"""detect-secrets over what a release ships: a planted secret is found where it is, inside a zip too, and
its value is never reported; a reviewed acceptance stands only for the string it names."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

from tests.support.planted import aws_key, plant
from varai_deploy.security.findings import Accepted
from varai_deploy.security.secret_scan import scan_tree
from varai_deploy.widgets.build import WIDGETS_DIR

NONE_ACCEPTED = Accepted(secrets={}, terraform={})


def test_a_secret_planted_in_the_widget_source_is_found_at_its_line_never_shown(tmp_path: Path):
    sources = tmp_path / "widgets"
    shutil.copytree(WIDGETS_DIR, sources)
    value = aws_key()
    line = plant(sources / "src" / "varai-widget.js", value)
    findings = [f for f in scan_tree(sources, "include/widgets", NONE_ACCEPTED) if f.rule == "AWS Access Key"]
    assert [(f.where, f.severity, f.accepted) for f in findings] == [
        (f"include/widgets/src/varai-widget.js:{line}", "critical", None)
    ]
    assert value not in repr(findings)
    assert findings[0].detail == f"hashed secret {hashlib.sha1(value.encode()).hexdigest()}"


def test_a_secret_inside_a_zip_archive_is_found_as_archive_and_member(tmp_path: Path):
    value = aws_key()
    with zipfile.ZipFile(tmp_path / "module.zip", "w") as archive:
        archive.writestr("view/frontend/web/js/widget.js", f"var awsKey = '{value}';\n")
    found = scan_tree(tmp_path, "magento", NONE_ACCEPTED)
    assert [(f.rule, f.where) for f in found] == [
        ("AWS Access Key", "magento/module.zip!view/frontend/web/js/widget.js:1")
    ]


def test_an_accepted_hash_stands_for_that_string_only(tmp_path: Path):
    harmless, planted = aws_key(), aws_key()
    (tmp_path / "a.js").write_text(f"var awsKey = '{harmless}';\nvar other = '{planted}';\n")
    reviewed = Accepted(secrets={hashlib.sha1(harmless.encode()).hexdigest(): "a documented test key"}, terraform={})
    found = {f.where: f.accepted for f in scan_tree(tmp_path, "x", reviewed) if f.rule == "AWS Access Key"}
    assert found == {"x/a.js:1": "a documented test key", "x/a.js:2": None}


def test_terraform_working_data_is_not_what_ships(tmp_path: Path):
    (tmp_path / ".terraform").mkdir()
    (tmp_path / ".terraform" / "cached.tf").write_text(f'key = "{aws_key()}"\n')
    (tmp_path / "main.tf").write_text("# nothing secret\n")
    assert scan_tree(tmp_path, "module", NONE_ACCEPTED) == []
