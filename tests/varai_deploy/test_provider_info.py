"""varai-deploy is an Airflow provider: ProvidersManager finds it through the installed entry point, its
connection types resolve to the project's hooks and the UI gets their forms.

The discovery runs in a fresh interpreter without PYTHONPATH, as an Airflow process of this venv does,
so it proves the installed package (``make setup``: ``uv pip install --no-deps -e .``), not the tests'
own ``sys.path``.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib import metadata
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest

from varai_deploy.provider_info import PACKAGE_NAME, get_provider_info

TYPES = {
    "varai_npm": "varai_deploy.hooks.npm.NpmRegistryHook",
    "varai_wordpress_svn": "varai_deploy.hooks.wordpress_svn.WordPressSvnHook",
    "varai_shopify": "varai_deploy.hooks.shopify.ShopifyHook",
    "varai_magento_marketplace": "varai_deploy.hooks.magento_marketplace.MagentoMarketplaceHook",
}

#: Run in the child: everything Airflow knows about the provider, as JSON on stdout.
DISCOVER = """
import json, warnings
warnings.simplefilter("ignore")
from airflow.providers_manager import ProvidersManager
from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

pm = ProvidersManager()
provider = pm.providers.get("varai-deploy")
hooks = ProvidersManagerTaskRuntime().hooks
ours = lambda key: key.startswith("varai_") or "__varai_" in key
print(json.dumps({
    "provider": provider and {"version": provider.version, "name": provider.data["name"]},
    "hooks": {t: hooks[t]._asdict() if hooks.get(t) else None for t in sorted(hooks) if ours(t)},
    "hook_names": {t: h.hook_name for t, h in hooks.items() if h},
    "field_behaviours": {t: b for t, b in pm.field_behaviours.items() if ours(t)},
    "form_widgets": {k: w.field_name for k, w in pm.connection_form_widgets.items() if ours(k)},
    "ui": {m.connection_type: m.model_dump(mode="json")
           for m in HookMetaService.hook_meta_data() if ours(m.connection_type)},
}))
"""


def _child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow-home")
    return env


@pytest.fixture(scope="module")
def discovered(tmp_path_factory) -> tuple[dict, str]:
    tmp = tmp_path_factory.mktemp("providers")
    done = subprocess.run(
        [sys.executable, "-c", DISCOVER],
        cwd=tmp,
        env=_child_env(tmp),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_the_installed_distribution_carries_the_entry_point():
    try:
        dist = metadata.distribution(PACKAGE_NAME)
    except metadata.PackageNotFoundError:
        pytest.fail("varai-deploy is not installed in this venv: run `make setup`")
    points = [ep for ep in dist.entry_points if ep.group == "apache_airflow_provider"]
    assert [ep.value for ep in points] == ["varai_deploy.provider_info:get_provider_info"]
    assert points[0].load()() == get_provider_info()


def test_the_provider_info_validates_against_airflows_schema():
    info = get_provider_info()
    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    behaviour_schema = json.loads(files("airflow").joinpath("customized_form_field_behaviours.schema.json").read_text())
    for conn in info["connection-types"]:
        behaviour = conn["ui-field-behaviour"]
        jsonschema.validate(
            {
                "hidden_fields": behaviour["hidden-fields"],
                "relabeling": behaviour["relabeling"],
                "placeholders": behaviour["placeholders"],
            },
            behaviour_schema,
        )


def test_each_connection_type_is_its_hooks_own():
    """The provider info and the hook class agree (ProvidersManager warns about an inconsistency), and
    no other installed provider declares the type (the first provider to declare one wins)."""
    declared = {conn["connection-type"]: conn for conn in get_provider_info()["connection-types"]}
    assert {t: c["hook-class-name"] for t, c in declared.items()} == TYPES
    for conn_type, conn in declared.items():
        module, _, name = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == conn_type
        assert hook.hook_name == conn["hook-name"]
        assert hook.conn_name_attr and hook.default_conn_name
    others = set()
    for dist in metadata.distributions():
        if dist.metadata["Name"] == PACKAGE_NAME:
            continue
        for ep in dist.entry_points:
            if ep.group == "apache_airflow_provider":
                others |= {c["connection-type"] for c in ep.load()().get("connection-types", [])}
    assert "http" in others and "google_cloud_platform" in others  # the scan did see the other providers
    assert not set(declared) & others


def test_providers_manager_discovers_the_provider(discovered):
    found, _ = discovered
    assert found["provider"] == {"version": metadata.version(PACKAGE_NAME), "name": "VarAI deploy"}


def test_its_connection_types_resolve_to_the_projects_hooks(discovered):
    found, _ = discovered
    assert {t: h["hook_class_name"] for t, h in found["hooks"].items()} == TYPES
    for conn_type, hook in found["hooks"].items():
        assert hook["package_name"] == PACKAGE_NAME, conn_type
        assert hook["connection_type"] == conn_type
    # What the project's gateway, Prometheus and CDN connections use stays the other providers'.
    assert found["hook_names"]["http"] == "HTTP"
    assert found["hook_names"]["google_cloud_platform"] == "Google Cloud"


def test_the_connection_forms_reach_the_ui(discovered):
    found, _ = discovered
    assert set(found["field_behaviours"]) == set(TYPES)
    assert found["field_behaviours"]["varai_npm"]["relabeling"]["password"].startswith("Automation token")
    assert found["form_widgets"] == {"extra__varai_shopify__api_key": "api_key"}
    ui = found["ui"]
    assert set(ui) == set(TYPES)
    assert ui["varai_npm"]["hook_name"] == "VarAI npm registry"
    assert ui["varai_npm"]["standard_fields"]["host"]["title"] == "Registry URL"
    assert ui["varai_npm"]["standard_fields"]["port"]["hidden"] is True
    assert ui["varai_shopify"]["extra_fields"]["api_key"]["schema"]["title"] == "App client ID"
    assert ui["varai_magento_marketplace"]["standard_fields"]["login"]["title"] == "API application ID"


def test_discovery_logs_no_warning_about_the_provider(discovered):
    _, stderr = discovered
    complaints = [
        line for line in stderr.splitlines() if "varai" in line.lower() and ("warning" in line or "error" in line)
    ]
    assert not complaints


@pytest.mark.parametrize(
    ("hook_path", "conn_id", "old_type"),
    [
        ("varai_deploy.hooks.npm.NpmRegistryHook", "varai_npm", "generic"),
        ("varai_deploy.hooks.wordpress_svn.WordPressSvnHook", "varai_wordpress_svn", "generic"),
        ("varai_deploy.hooks.shopify.ShopifyHook", "varai_shopify", "http"),
        ("varai_deploy.hooks.magento_marketplace.MagentoMarketplaceHook", "varai_magento_marketplace", "http"),
    ],
)
@pytest.mark.parametrize("typed", [True, False], ids=["own type", "older type"])
def test_a_connection_of_the_older_type_works_the_same(monkeypatch, hook_path, conn_id, old_type, typed):
    """What ``sandbox up`` writes (``generic`` / ``http``) and a connection made in the UI with the new
    type give the hook the same fields: the hooks read fields, never the type."""
    fields = {
        "host": "127.0.0.1" if old_type == "http" else "http://127.0.0.1:1/repo/",
        "port": 1,
        "schema": "http",
        "login": "user",
        "password": "secret",
        "extra": {"api_key": "client-id"},
    }
    conn_type = conn_id if typed else old_type
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": conn_type, **fields}))
    module, _, name = hook_path.rpartition(".")
    hook = getattr(importlib.import_module(module), name)()
    conn = hook.get_connection(conn_id)
    assert conn.conn_type == conn_type
    if conn_id == "varai_npm":
        assert hook.registry_url == "http://127.0.0.1:1/repo/"
    elif conn_id == "varai_wordpress_svn":
        assert (hook.repository_url, hook._credentials()) == ("http://127.0.0.1:1/repo", ("user", "secret"))
    elif conn_id == "varai_shopify":
        assert (hook.base_url, hook.api_key) == ("http://127.0.0.1:1", "client-id")
    else:
        hook.get_conn()
        assert hook.base_url == "http://127.0.0.1:1"
