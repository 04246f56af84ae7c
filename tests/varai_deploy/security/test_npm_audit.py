"""npm audit of the published package's dependencies against the environment's registry (a real Verdaccio)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.npm_stack import NpmStack, npm_stack
from varai_deploy.hooks.npm import NpmRegistryHook
from varai_deploy.security.npm_audit import audit_package
from varai_deploy.widgets import build_release


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NpmStack]:
    with npm_stack(tmp_path_factory.mktemp("npm") / "sandbox") as stack:
        yield stack


def test_a_package_without_dependencies_has_nothing_to_ask(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_VARAI_NPM", raising=False)  # asking would fail: no connection
    package = build_release("v1.2.3", tmp_path / "build") and tmp_path / "build" / "html" / "package.json"
    assert audit_package(package, "varai_npm") == ([], {"dependencies": 0, "audited": True})


def test_a_registry_that_does_not_answer_audits_is_reported_not_taken_for_clean(
    registry: NpmStack, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_NPM", registry.connection_env())
    build_release("v1.2.3", tmp_path / "build")
    NpmRegistryHook("varai_npm").publish(tmp_path / "build" / "html", tag="latest")
    shop = tmp_path / "shop" / "package.json"
    shop.parent.mkdir()
    shop.write_text(json.dumps({"name": "shop", "version": "1.0.0", "dependencies": {"@varai/widget": "1.2.3"}}))
    findings, summary = audit_package(shop, "varai_npm")
    assert findings == []
    assert summary["audited"] is False and summary["dependencies"] == 1
    assert "404" in summary["why"] and "/-/npm/v1/security/" in summary["why"]
