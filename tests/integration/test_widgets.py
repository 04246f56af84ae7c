"""Phase 4 through real Airflow: the widget published to all four marketplaces on the sandbox's real servers.

The sandbox is the session's, shared with the other modules. Before this module's first test, one
release of v9.0.0 to every marketplace (``full_release``, what it published recorded right then);
every test then sets up what else it needs, so they pass in any order. The versions (v9.0.x) are
above every other module's, so `latest` moves to them whatever those published before (`latest`
only moves forward). Every check reads what a merchant would get: the CDN over HTTP, the npm
registry's packument, an anonymous SVN read, the Composer repository's packages.json.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from tests.support.planted import aws_key, plant
from tests.support.stack import gateway_versions, release
from varai_deploy.release_cli import widget_lines
from varai_deploy.services import SERVICE_NAMES
from varai_deploy.widgets import WIDGETS_DIR, build_release

pytestmark = pytest.mark.integration

VERSION = "v9.0.0"
PLAIN = "9.0.0"
ALL = ["html", "shopify", "woocommerce", "magento"]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return build_release(VERSION, tmp_path_factory.mktemp("widgets") / "build")


@pytest.fixture(scope="module")
def endpoints(sandbox):
    return sandbox.status()["endpoints"]


def fetch(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


VERSIONED = [f"/widgets/html/{PLAIN}/js/varai-widget.min.js", f"/widgets/shopify/{PLAIN}/widget.js"]
LATEST = "/widgets/html/latest/js/varai-widget.min.js"


def cdn_state(endpoints) -> dict[str, tuple[int, str]]:
    cdn = endpoints["cdn"]
    return {path: (lambda r: (r[0], sha256(r[1])))(fetch(cdn + path)) for path in [*VERSIONED, LATEST]}


def npm_state(endpoints) -> dict:
    status, body, _ = fetch(endpoints["npm_registry"] + "/@varai%2fwidget")
    assert status == 200, body[:300]
    doc = json.loads(body)
    return {"dist-tags": doc["dist-tags"], "dist": doc["versions"][PLAIN]["dist"]}


def svn_tag_file(endpoints, path: str) -> bytes:
    """What an anonymous user (a merchant's WordPress) reads from the plugin repository."""
    url = f"{endpoints['svn']}/varai-ai-discovery/tags/{PLAIN}/{path}"
    done = subprocess.run(["svn", "cat", "--non-interactive", url], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def rows(run) -> dict[str, list[tuple[str, str]]]:
    """channel -> [(destination, outcome)] from the summary the run printed (its storefront checks aside)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for line in widget_lines(run.log):
        channel, destination, outcome, *_ = line.split()
        if destination != "storefront":
            out.setdefault(channel, []).append((destination, outcome))
    return out


def storefront_lines(run) -> list[str]:
    return [line.split(None, 3)[3] for line in widget_lines(run.log) if line.split()[1:3] == ["storefront", "checked"]]


@pytest.fixture(scope="module", autouse=True)
def full_release(stack, sandbox, endpoints) -> dict:
    """v9.0.0 to every marketplace, first in this module, and what merchants got right after it."""
    run = release(stack, VERSION, marketplaces=ALL)
    trunk_readme = subprocess.run(
        ["svn", "cat", "--non-interactive", f"{endpoints['svn']}/varai-ai-discovery/trunk/readme.txt"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return {
        "run": run,
        "serving": gateway_versions(),
        "cdn": cdn_state(endpoints),
        "versioned_headers": fetch(endpoints["cdn"] + VERSIONED[0])[2],
        "npm": npm_state(endpoints) if run.succeeded else None,
        "svn_widget": svn_tag_file(endpoints, "assets/js/varai-widget.min.js") if run.succeeded else None,
        "trunk_readme": trunk_readme,
    }


def test_a_full_release_publishes_every_marketplace_and_verifies_it(full_release, manifest):
    run = full_release["run"]
    assert run.succeeded, run.errors or run.log[-3000:]
    serving = full_release["serving"]
    assert serving == {name: (200, VERSION, serving[name][2]) for name in SERVICE_NAMES}
    published = rows(run)
    assert sorted(published) == sorted(ALL), published
    assert all(outcome == "published" for pairs in published.values() for _, outcome in pairs), published
    # Merchants get the same bytes everywhere: the CDN (versioned and latest), npm, SVN.
    assert set(full_release["cdn"].values()) == {(200, manifest.widget_sha256)}
    assert "immutable" in full_release["versioned_headers"]["Cache-Control"]
    assert full_release["npm"]["dist-tags"]["latest"] == PLAIN
    assert sha256(full_release["svn_widget"]) == manifest.widget_sha256
    assert f"Stable tag: {PLAIN}" in full_release["trunk_readme"]
    # The verify tasks ran the consumer-side checks (npm pack, svn export, composer require).
    assert run.log.count("verified:") >= 4
    # Phase 4 in a browser: a storefront per delivery loaded the widget from where it was published (the
    # CDN's script with its SRI, the npm package's file, the plugin's SVN tag rendered by its own PHP, the
    # module's Composer zip rendered by its own block, the Shopify app block rendered by Liquid with its script
    # from the CDN) and a shopper's search came from v9.0.0.
    shops = storefront_lines(run)
    assert sorted(line.split(":")[0] for line in shops) == [
        "Magento module",
        "Shopify app block",
        "WordPress plugin",
        "cdn script tag",
        "npm package",
    ], shops
    assert all(line.endswith(f"search 3 frames from {VERSION}") for line in shops), shops


def test_publishing_the_same_version_again_changes_nothing(stack, sandbox, endpoints):
    before = (cdn_state(endpoints), npm_state(endpoints))
    run = release(stack, VERSION, marketplaces=ALL)
    assert run.succeeded, run.errors or run.log[-3000:]
    outcomes = {outcome for pairs in rows(run).values() for _, outcome in pairs}
    # "skipped": a `latest` alias a newer version (another test's v9.0.1) holds is left alone.
    assert "unchanged" in outcomes and outcomes <= {"unchanged", "skipped"}, rows(run)
    assert (cdn_state(endpoints), npm_state(endpoints)) == before


def test_different_bytes_under_a_published_version_are_refused_and_nothing_is_overwritten(
    stack, sandbox, endpoints, manifest, tmp_path
):
    sources = tmp_path / "widgets"
    shutil.copytree(WIDGETS_DIR, sources)
    script = sources / "src" / "varai-widget.js"
    script.write_text(script.read_text().replace("__VARAI_VERSION__", "__VARAI_VERSION__-tampered", 1))
    before = (cdn_state(endpoints), npm_state(endpoints), svn_tag_file(endpoints, "assets/js/varai-widget.min.js"))
    run = release(stack, VERSION, marketplaces=ALL, env={"VARAI_WIDGET_SOURCES": str(sources)})
    assert not run.succeeded
    failed = {line.split()[0] for line in widget_lines(run.log) if line.split()[1] == "FAILED"}
    assert failed == set(ALL), widget_lines(run.log)
    assert "already published" in run.log
    after = (cdn_state(endpoints), npm_state(endpoints), svn_tag_file(endpoints, "assets/js/varai-widget.min.js"))
    assert after == before
    assert {after[0][path] for path in VERSIONED} == {(200, manifest.widget_sha256)}


def test_a_refused_token_fails_only_its_marketplace(stack, sandbox, endpoints):
    wrong = json.dumps({"conn_type": "http", "host": endpoints["npm_registry"], "password": "not-the-token"})
    run = release(stack, "v9.0.1", marketplaces=["html", "woocommerce"], env={"AIRFLOW_CONN_VARAI_NPM": wrong})
    assert not run.succeeded
    summary = rows(run)
    assert ("svn", "published") in summary["woocommerce"], summary
    assert summary["html"][0][0] == "FAILED", summary
    assert "varai_npm" in " ".join(widget_lines(run.log))
    assert "not-the-token" not in run.log
    # The backend release stands: a widget channel failing is no reason to roll the services back.
    assert {v for _, v, _ in gateway_versions().values()} == {"v9.0.1"}
    # The same release again with the right token converges: html goes live, woocommerce is unchanged.
    again = release(stack, "v9.0.1", marketplaces=["html", "woocommerce"])
    assert again.succeeded, again.errors or again.log[-3000:]
    assert ("svn", "unchanged") in rows(again)["woocommerce"]
    assert ("npm", "published") in rows(again)["html"]


def test_a_missing_credential_fails_before_anything_changes(stack, sandbox, endpoints):
    no_token = json.dumps({"conn_type": "http", "host": "127.0.0.1"})
    before = gateway_versions()
    run = release(stack, "v9.0.2", marketplaces=ALL, env={"AIRFLOW_CONN_VARAI_SHOPIFY": no_token})
    assert not run.succeeded
    assert "'varai_shopify' (shopify) has no password" in " ".join(run.errors)
    assert gateway_versions() == before
    assert fetch(endpoints["cdn"] + "/widgets/html/9.0.2/js/varai-widget.min.js")[0] == 404


def everything(sandbox, endpoints, plain: str) -> dict:
    """What a release could change: services, ledger entries (the lock's too), Terraform state, published widgets."""
    from varai_deploy.config import load_environment
    from varai_deploy.ledger import Ledger

    state = load_environment("sandbox").terraform.state_path
    npm = json.loads(fetch(endpoints["npm_registry"] + "/@varai%2fwidget")[1])
    return {
        "services": sandbox.status()["services"],
        "ledger": [(e["id"], e["action"]) for e in Ledger("sandbox").audit()],
        "terraform": state.read_bytes() if state.exists() else None,
        "cdn": fetch(f"{endpoints['cdn']}/widgets/html/{plain}/js/varai-widget.min.js")[0],
        "npm": sorted(npm["versions"]),
    }


def test_a_dry_run_reports_per_service_and_marketplace_and_changes_nothing(stack, sandbox, endpoints):
    """Validated and planned, then only a report: no service, ledger entry, Terraform state or published
    widget differs afterwards, and the environment was never locked."""
    version, plain = "v9.5.0", "9.5.0"
    serving = {name: answer[1] for name, answer in gateway_versions().items()}
    before = everything(sandbox, endpoints, plain)
    run = release(stack, version, marketplaces=ALL, dry_run=True)
    assert run.succeeded, run.errors or run.log[-3000:]
    assert everything(sandbox, endpoints, plain) == before
    assert before["cdn"] == 404 and plain not in before["npm"]
    assert f"Dry run of {version} to sandbox: nothing was changed. The release would:" in run.log
    for name in SERVICE_NAMES:
        assert f"  {name}: deploy {version} beside {serving[name]}, switch once healthy" in run.log, name
    for channel in ALL:
        assert f"  widgets {channel}: publish {version} once the backend passed" in run.log, channel
    assert "terraform: Plan: " in run.log


def test_a_secret_planted_in_a_widget_source_fails_phase_1_before_anything_changes(stack, sandbox, endpoints, tmp_path):
    """The security scan refuses the release in validate, naming the file and line (never the value); no
    service, ledger entry, Terraform state or marketplace changed, and the environment was never locked."""
    sources = tmp_path / "widgets"
    shutil.copytree(WIDGETS_DIR, sources)
    value = aws_key()
    line = plant(sources / "src" / "varai-widget.js", value)
    before = everything(sandbox, endpoints, "9.6.0")
    run = release(stack, "v9.6.0", marketplaces=ALL, env={"VARAI_WIDGET_SOURCES": str(sources)})
    assert not run.succeeded
    assert any(e.startswith("security scan: ") for e in run.errors), run.errors
    # Named by its path (relative to the repository when the sources lie inside it) and line.
    named = re.search(r"\[critical\] secrets AWS Access Key at (\S+):(\d+): hashed secret", run.log)
    assert named and (sources / "src" / "varai-widget.js").match(named[1]) and named[2] == str(line), run.log[-2000:]
    assert "Task failed with exception" in run.log and "validate.security_scan" in run.log
    assert value not in run.log
    after = everything(sandbox, endpoints, "9.6.0")
    earlier = before.pop("ledger")
    added = [action for entry, action in after.pop("ledger") if (entry, action) not in earlier]
    assert after == before
    assert added == ["task_failed"]  # the audit trail records the refusal; no lock was ever taken
