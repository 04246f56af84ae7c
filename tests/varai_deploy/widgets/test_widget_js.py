"""The built widget script: valid JavaScript (node), smaller when minified, and it works in a (minimal) page."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import rjsmin

from varai_deploy.config import REPO_ROOT
from varai_deploy.widgets import Manifest

HARNESS = Path(__file__).with_name("widget_harness.js")
BUILT_SCRIPTS = ["dist/varai-widget.js", "dist/varai-widget.min.js"]


@pytest.fixture(scope="module")
def node() -> str:
    """The project's pinned Node.js (the venv's wheel), never whatever node is on PATH."""
    from varai_deploy.nodejs import node_binary

    return node_binary()


def run_node(node: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([node, *args], capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize("script", BUILT_SCRIPTS)
def test_node_accepts_the_syntax(node: str, out_dir: Path, script: str) -> None:
    checked = run_node(node, "--check", str(out_dir / "html" / script))
    assert checked.returncode == 0, checked.stderr


def test_minified_is_smaller_and_keeps_the_banner(out_dir: Path) -> None:
    source = (out_dir / "html/dist/varai-widget.js").read_bytes()
    minified = (out_dir / "html/dist/varai-widget.min.js").read_bytes()
    assert len(minified) < 0.8 * len(source)
    assert minified.startswith(b"/*! VarAI AI Discovery widget 1.4.2 |")
    assert b"One script for every storefront" not in minified, "ordinary comments are stripped"


def test_c_and_pure_python_minifier_agree(out_dir: Path) -> None:
    """Machines without rjsmin's C extension build the same bytes."""
    source = (out_dir / "html/dist/varai-widget.js").read_text()
    pure_python = rjsmin._make_jsmin(python_only=True)
    assert (
        pure_python(source, keep_bang_comments=True).encode()
        == (out_dir / "html/dist/varai-widget.min.js").read_bytes()
    )


def test_sri_matches_independent_computations(node: str, out_dir: Path, manifest: Manifest) -> None:
    cdn_file = out_dir / "html/dist/varai-widget.min.js"
    by_python = "sha384-" + base64.b64encode(hashlib.sha384(cdn_file.read_bytes()).digest()).decode()
    by_node = run_node(
        node,
        "-e",
        "const c=require('crypto'),fs=require('fs');"
        "process.stdout.write('sha384-'+c.createHash('sha384').update(fs.readFileSync(process.argv[1])).digest('base64'))",
        str(cdn_file),
    )
    assert by_node.returncode == 0, by_node.stderr
    assert manifest.widget_sri == by_python == by_node.stdout
    assert manifest.to_dict()["cdn"]["sri"] == by_node.stdout


def harness(node: str, script: Path, scenario: str) -> dict:
    run = run_node(node, str(HARNESS), str(script), scenario)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.mark.parametrize("script", BUILT_SCRIPTS)
def test_script_tag_config_renders_and_calls_ai_discovery(node: str, out_dir: Path, script: str) -> None:
    seen = harness(node, out_dir / "html" / script, "script-tag")
    assert seen["version"] == "1.4.2"
    assert seen["defaults"] == {"apiBase": "https://api.varai.ai", "label": "Find your frames"}
    assert seen["widget"] == {
        "className": "varai-widget",
        "ready": "1.4.2",
        "button": "Find your frames",
        "formHidden": True,
    }
    assert seen["styleInjected"] and seen["inputFocused"] and seen["submitPrevented"]
    assert seen["formHiddenAfterClick"] is False
    assert seen["requests"] == [
        {
            "url": "http://127.0.0.1:18080/ai/discover?q=light%20round%20frames",
            "headers": {"Accept": "application/json", "X-API-Key": "pk_test_123"},
            "method": "GET",
            "credentials": "omit",
        }
    ]
    assert seen["results"] == ["Aria Roundround", "Milo Pantopanto"]
    assert seen["status"] == "2 frames for you"


@pytest.mark.parametrize("script", BUILT_SCRIPTS)
def test_placeholders_and_the_default_api(node: str, out_dir: Path, script: str) -> None:
    seen = harness(node, out_dir / "html" / script, "placeholders")
    first, second, without_key = seen["widgets"]
    assert first["button"] == "Find my glasses" and second["button"] == "Find your frames"
    assert without_key is None, "a placeholder without an API key stays empty"
    assert seen["requests"][0]["url"] == "https://api.varai.ai/ai/discover?q=cat%20eye"
    assert seen["requests"][0]["headers"]["X-API-Key"] == "pk_shop_a"
    assert [r["name"] for r in seen["results"]] == ["Aria Round", "Milo Panto"]


@pytest.mark.parametrize("script", BUILT_SCRIPTS)
def test_init_errors_failures_and_double_loading(node: str, out_dir: Path, script: str) -> None:
    path = out_dir / "html" / script
    errors = harness(node, path, "init-errors")
    assert errors["threw"] == "VaraiWidget.init: apiKey is required (your VarAI widget API key)"
    assert errors["floating"]["className"] == "varai-widget--floating varai-widget" and errors["floatingParent"]
    assert errors["autoWidgets"] == 1
    failed = harness(node, path, "http-error")
    assert failed["results"] == [] and failed["error"] == "AI Discovery answered HTTP 503"
    assert failed["status"] == "Sorry, frame suggestions are unavailable right now."
    assert failed["empty"] == [] and failed["emptyStatus"].startswith("Tell us what you are looking for")
    twice = harness(node, path, "double-load")
    assert twice == {"sameObject": True, "widgets": 0}


@pytest.mark.parametrize("script", BUILT_SCRIPTS)
def test_a_refused_key_and_the_rate_limit_are_told_in_words_and_the_merchant_is_told_why(
    node: str, out_dir: Path, script: str
) -> None:
    seen = harness(node, out_dir / "html" / script, "refused")
    assert seen["statuses"] == [
        "Frame suggestions are not available on this shop yet.",
        "Lots of shoppers are searching right now; please try again in 7 s.",
        "Lots of shoppers are searching right now; please try again in a moment.",
    ]
    assert seen["retryAfter"] is None  # the last 429 came without Retry-After
    assert seen["warnings"] == [
        "VarAI widget: the AI Discovery API refused this shop (HTTP 401); check its data-varai-api-key and that "
        "the shop's address is allowed."
    ]


def test_the_source_is_the_one_in_include(out_dir: Path) -> None:
    source = (REPO_ROOT / "include/widgets/src/varai-widget.js").read_bytes()
    assert (out_dir / "html/dist/varai-widget.js").read_bytes() == source.replace(b"__VARAI_VERSION__", b"1.4.2")
