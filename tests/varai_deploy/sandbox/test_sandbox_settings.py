"""Settings: the environment file is the default, env vars override, ports are deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from varai_deploy.sandbox import SandboxError, SandboxSettings
from varai_deploy.sandbox.settings import REPO_ROOT


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "VARAI_SANDBOX_HOME",
        "VARAI_SANDBOX_GATEWAY_PORT",
        "VARAI_SANDBOX_PORT_BASE",
        "VARAI_SANDBOX_PROMETHEUS_PORT",
        "VARAI_SANDBOX_TRAFFIC_RPS",
        "VARAI_SANDBOX_COMPONENT_PORT_BASE",
        "VARAI_SANDBOX_COMPONENTS",
        "VARAI_SANDBOX_INSTANCES",
        "VARAI_SANDBOX_REGIONS",
    ):
        monkeypatch.delenv(var, raising=False)


def test_defaults_come_from_the_sandbox_environment_file() -> None:
    s = SandboxSettings.load()
    assert s.home == REPO_ROOT / ".sandbox"
    assert (s.host, s.gateway_port, s.service_port_base) == ("127.0.0.1", 18080, 18100)
    assert s.gateway_url == "http://127.0.0.1:18080"
    assert (s.prometheus_port, s.prometheus_url) == (18090, "http://127.0.0.1:18090")
    assert s.traffic_rps == 40


def test_env_vars_override_and_relative_home_is_relative_to_the_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VARAI_SANDBOX_HOME", "tmp/sbx")
    monkeypatch.setenv("VARAI_SANDBOX_GATEWAY_PORT", "19590")
    monkeypatch.setenv("VARAI_SANDBOX_PORT_BASE", "19600")
    s = SandboxSettings.load()
    assert s.home == REPO_ROOT / "tmp" / "sbx"
    assert (s.gateway_port, s.service_port_base) == (19590, 19600)


def test_ports_are_deterministic_per_service_and_colour(tmp_path: Path) -> None:
    s = SandboxSettings(home=tmp_path, gateway_port=19500, service_port_base=19510)
    assert s.port_for("ai-discovery", "blue") == 19510
    assert s.port_for("ai-discovery", "green") == 19511
    assert s.port_for("face-analysis", "blue") == 19520
    assert s.port_for("api-gateway", "green") == 19551
    assert s.service_url("recommendation", "green") == "http://127.0.0.1:19531"


def test_a_live_revision_runs_two_instances_two_ports_apart_within_the_service_stride(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s = SandboxSettings(home=tmp_path, gateway_port=19500, service_port_base=19510)
    assert s.instances == 2
    assert [s.port_for("ai-discovery", c, i) for c in ("blue", "green") for i in (0, 1)] == [19510, 19512, 19511, 19513]
    assert s.port_for("api-gateway", "green", 1) == 19553  # the last service port
    assert s.service_url("analytics", "blue", 1) == "http://127.0.0.1:19542"
    with pytest.raises(SandboxError, match="instance must be between 0 and 1"):
        s.port_for("ai-discovery", "blue", 2)
    # The replicas' ports count as service ports.
    with pytest.raises(SandboxError, match="gateway_port 19553 falls inside the service port range 19510-19553"):
        SandboxSettings(home=tmp_path, gateway_port=19553, service_port_base=19510)
    with pytest.raises(SandboxError, match="storage would listen on 19552"):
        SandboxSettings(home=tmp_path, gateway_port=19500, service_port_base=19510, component_port_base=19552)
    # One to five (two ports each of a service's ten).
    assert SandboxSettings(home=tmp_path, instances=5).port_for("ai-discovery", "green", 4) == 18109
    for bad in (0, 6, "2", True):
        with pytest.raises(SandboxError, match="instances must be between 1 and 5.*VARAI_SANDBOX_INSTANCES"):
            SandboxSettings(home=tmp_path, instances=bad)
    monkeypatch.setenv("VARAI_SANDBOX_INSTANCES", "3")
    monkeypatch.setenv("VARAI_SANDBOX_REGIONS", "local")
    assert SandboxSettings.load().instances == 3
    monkeypatch.setenv("VARAI_SANDBOX_INSTANCES", "many")
    with pytest.raises(SandboxError, match="VARAI_SANDBOX_INSTANCES must be a whole number"):
        SandboxSettings.load()
    monkeypatch.delenv("VARAI_SANDBOX_INSTANCES")
    config = tmp_path / "sandbox.yaml"
    config.write_text("sandbox:\n  instances: 1\n")
    assert SandboxSettings.load(config).instances == 1


def test_regions_each_run_the_instances_of_a_live_revision_on_ports_of_their_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s = SandboxSettings(home=tmp_path, gateway_port=19500, service_port_base=19510, regions=("us-central1", "us-east1"))
    assert s.total_instances == 4 and [s.region_of(i) for i in range(4)] == ["us-central1"] * 2 + ["us-east1"] * 2
    assert s.instances_in("us-east1") == range(2, 4)
    assert [s.port_for("recommendation", "green", i) for i in range(4)] == [19531, 19533, 19535, 19537]
    with pytest.raises(
        SandboxError, match="unknown sandbox region 'eu-west1'; the sandbox runs in us-central1, us-east1"
    ):
        s.instances_in("eu-west1")
    with pytest.raises(SandboxError, match="instances must be between 1 and 2 with 2 region"):
        SandboxSettings(home=tmp_path, instances=3, regions=("a", "b"))
    for bad in ((), ("a", "a"), ("Primary",), ("a b",), "us-east1"):
        with pytest.raises(SandboxError, match="regions must be distinct names.*VARAI_SANDBOX_REGIONS"):
            SandboxSettings(home=tmp_path, regions=bad)
    # The project's sandbox runs two regions; the variable overrides, and the saved settings keep them.
    assert SandboxSettings.load().regions == ("us-central1", "us-east1")
    monkeypatch.setenv("VARAI_SANDBOX_REGIONS", " eu-west1 , eu-north1 ")
    assert SandboxSettings.load().regions == ("eu-west1", "eu-north1")
    s.save()
    assert SandboxSettings.from_home(tmp_path) == s


def test_saved_settings_rebuild_the_same_settings_in_another_process(tmp_path: Path) -> None:
    s = SandboxSettings(
        home=tmp_path / "sbx", gateway_port=19500, service_port_base=19510, instances=3, components=("svn",)
    )
    s.save()
    saved = json.loads(s.settings_file.read_text())["settings"]
    assert saved["home"] == str(tmp_path / "sbx") and saved["components"] == ["svn"]
    assert SandboxSettings.from_home(tmp_path / "sbx") == s
    with pytest.raises(SandboxError, match="no sandbox settings in .*settings.json"):
        SandboxSettings.from_home(tmp_path / "elsewhere")


def test_bad_ports_are_refused_with_the_variable_to_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VARAI_SANDBOX_GATEWAY_PORT", "eighty")
    with pytest.raises(SandboxError, match="VARAI_SANDBOX_GATEWAY_PORT"):
        SandboxSettings.load()
    with pytest.raises(SandboxError, match="inside the service port range"):
        SandboxSettings(home=tmp_path, gateway_port=19515, service_port_base=19510)
    with pytest.raises(SandboxError, match="unknown service"):
        SandboxSettings(home=tmp_path).port_for("billing", "blue")


def test_prometheus_port_and_traffic_rate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # gateway + 10, unless the services start there (as in the test fixtures' blocks): then gateway + 5.
    assert SandboxSettings(home=tmp_path, gateway_port=19280, service_port_base=19300).prometheus_port == 19290
    assert SandboxSettings(home=tmp_path, gateway_port=19500, service_port_base=19510).prometheus_port == 19505
    monkeypatch.setenv("VARAI_SANDBOX_PROMETHEUS_PORT", "19599")
    monkeypatch.setenv("VARAI_SANDBOX_TRAFFIC_RPS", "0")
    s = SandboxSettings.load()
    assert (s.prometheus_port, s.traffic_rps) == (19599, 0)
    with pytest.raises(SandboxError, match="prometheus_port 18100 collides.*VARAI_SANDBOX_PROMETHEUS_PORT"):
        SandboxSettings(home=tmp_path, prometheus_port=18100)
    with pytest.raises(SandboxError, match="traffic_rps must be between 0 .off. and 200"):
        SandboxSettings(home=tmp_path, traffic_rps=500)
    monkeypatch.setenv("VARAI_SANDBOX_TRAFFIC_RPS", "lots")
    with pytest.raises(SandboxError, match="VARAI_SANDBOX_TRAFFIC_RPS"):
        SandboxSettings.load()


def test_a_config_without_the_new_keys_still_loads(tmp_path: Path) -> None:
    config = tmp_path / "sandbox.yaml"
    config.write_text("sandbox:\n  home: .sandbox\n  gateway_port: 18280\n  service_port_base: 18300\n")
    s = SandboxSettings.load(config)
    assert (s.prometheus_port, s.traffic_rps) == (18290, 20)


def test_stand_ins_listen_below_the_gateway_in_registry_order() -> None:
    s = SandboxSettings.load()
    assert s.components == (
        "storage",
        "cdn",
        "npm_registry",
        "svn",
        "marketplace",
        "shopify",
        "postgres",
        "slack",
        "email",
        "statuspage",
        "pushgateway",
        "cloudsql",
        "cloudrun",
        "staging",
    )
    assert [s.component_port(name) for name in s.components] == list(range(18060, 18074))
    assert s.component_url("cdn") == "http://127.0.0.1:18061"


def test_stand_ins_can_be_chosen_and_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VARAI_SANDBOX_COMPONENTS", "svn, storage")
    monkeypatch.setenv("VARAI_SANDBOX_COMPONENT_PORT_BASE", "19700")
    s = SandboxSettings.load()
    assert s.components == ("svn", "storage")
    assert s.component_port("svn") == 19703
    monkeypatch.setenv("VARAI_SANDBOX_COMPONENTS", "none")
    assert SandboxSettings.load().components == ()


def test_unknown_or_colliding_stand_ins_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="unknown sandbox component.*ftp.*VARAI_SANDBOX_COMPONENTS"):
        SandboxSettings(home=tmp_path, components=("ftp",))
    with pytest.raises(SandboxError, match="storage would listen on 18100.*VARAI_SANDBOX_COMPONENT_PORT_BASE"):
        SandboxSettings(home=tmp_path, component_port_base=18100)
