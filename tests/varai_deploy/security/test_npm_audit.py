"""npm audit of the published package's dependencies against the environment's registry (a real Verdaccio)."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.npm_stack import NpmStack, npm_stack
from tests.support.threaded_http import serving
from varai_deploy.hooks.npm import NpmRegistryHook
from varai_deploy.security.npm_audit import audit_package
from varai_deploy.widgets import build_release


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NpmStack]:
    with npm_stack(tmp_path_factory.mktemp("npm") / "sandbox") as stack:
        yield stack


def shop_depending_on_the_widget(registry: NpmStack, tmp_path: Path, monkeypatch) -> Path:
    """A shop's package.json depending on @varai/widget 1.2.3, published to the registry if it is not yet."""
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_NPM", registry.connection_env())
    if not NpmRegistryHook("varai_npm").published("@varai/widget", "1.2.3"):
        build_release("v1.2.3", tmp_path / "build")
        NpmRegistryHook("varai_npm").publish(tmp_path / "build" / "html", tag="latest")
    shop = tmp_path / "shop" / "package.json"
    shop.parent.mkdir()
    shop.write_text(json.dumps({"name": "shop", "version": "1.0.0", "dependencies": {"@varai/widget": "1.2.3"}}))
    return shop


def test_a_package_without_dependencies_has_nothing_to_ask(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_VARAI_NPM", raising=False)  # asking would fail: no connection
    build_release("v1.2.3", tmp_path / "build")
    assert audit_package(tmp_path / "build" / "html" / "package.json", "varai_npm") == (
        [],
        {"dependencies": 0, "audited": True},
    )


def test_a_registry_that_does_not_answer_audits_is_reported_not_taken_for_clean(
    registry: NpmStack, tmp_path: Path, monkeypatch
):
    shop = shop_depending_on_the_widget(registry, tmp_path, monkeypatch)
    findings, summary = audit_package(shop, "varai_npm")
    assert findings == []
    assert summary["audited"] is False and summary["dependencies"] == 1
    assert "404" in summary["why"] and "/-/npm/v1/security/" in summary["why"]


ADVISORY = {
    "id": 1100001,
    "url": "https://github.com/advisories/GHSA-0000-0000-0000",
    "title": "Cross-site scripting in the suggestion list",
    "severity": "moderate",
    "vulnerable_versions": "<=1.2.3",
    "cwe": ["CWE-79"],
    "cvss": {"score": 6.1, "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"},
}


@contextmanager
def answering_audits(registry: NpmStack, asked: list[dict]) -> Iterator[str]:
    """The registry as npmjs.org is: the real Verdaccio for packages, and the audit service (which cannot run
    here) answering npm's bulk advisory request, in the format npm's own client reads, for @varai/widget."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            assert self.path == "/-/npm/v1/security/advisories/bulk", self.path
            asked.append(json.loads(body))  # {package: [versions]}
            answer = json.dumps({"@varai/widget": [ADVISORY]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def do_GET(self) -> None:
            try:
                with urllib.request.urlopen(registry.url.rstrip("/") + self.path, timeout=10) as resp:
                    status, answer, ctype = resp.status, resp.read(), resp.headers["Content-Type"]
            except urllib.error.HTTPError as exc:
                status, answer, ctype = exc.code, exc.read(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as port:
        yield f"http://127.0.0.1:{port}/"


def test_an_advisory_on_a_dependency_is_a_finding_at_the_registrys_severity(
    registry: NpmStack, tmp_path: Path, monkeypatch
):
    shop = shop_depending_on_the_widget(registry, tmp_path, monkeypatch)
    asked: list[dict] = []
    with answering_audits(registry, asked) as url:
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_NPM", registry.connection_env(host=url))
        findings, summary = audit_package(shop, "varai_npm")
    assert asked == [{"@varai/widget": ["1.2.3"]}]
    assert summary == {"dependencies": 1, "audited": True}
    assert [(f.scanner, f.severity, f.rule, f.where, f.detail) for f in findings] == [
        (
            "npm-audit",
            "medium",
            ADVISORY["title"],
            "shop -> @varai/widget",
            f"direct dependency; vulnerable: <=1.2.3 {ADVISORY['url']}",
        )
    ]
