"""Where the sandbox lives and listens.

Defaults come from the ``sandbox:`` section of ``include/environments/sandbox.yaml`` so the
sandbox and the DAGs agree on one source; environment variables override it so tests, CI
and a second checkout can run side by side without editing config.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.state import read_json, write_json_atomic
from varai_deploy.sandbox.validation import COLOURS, check_colour, check_service
from varai_deploy.services import SERVICE_NAMES

#: The repository root: plugins/varai_deploy/sandbox/settings.py -> parents[3].
REPO_ROOT = Path(__file__).resolve().parents[3]
PLUGINS_DIR = REPO_ROOT / "plugins"
DEFAULT_CONFIG = REPO_ROOT / "include" / "environments" / "sandbox.yaml"

ENV_HOME = "VARAI_SANDBOX_HOME"
ENV_GATEWAY_PORT = "VARAI_SANDBOX_GATEWAY_PORT"
ENV_PORT_BASE = "VARAI_SANDBOX_PORT_BASE"
ENV_PROMETHEUS_PORT = "VARAI_SANDBOX_PROMETHEUS_PORT"
ENV_TRAFFIC_RPS = "VARAI_SANDBOX_TRAFFIC_RPS"
#: Staging's own shoppers, through its load balancer (the ``staging`` component).
ENV_STAGING_TRAFFIC_RPS = "VARAI_SANDBOX_STAGING_TRAFFIC_RPS"
ENV_COMPONENT_PORT_BASE = "VARAI_SANDBOX_COMPONENT_PORT_BASE"
ENV_INSTANCES = "VARAI_SANDBOX_INSTANCES"
#: The regions the services run in, comma-separated: the first serves, the others stand by.
ENV_REGIONS = "VARAI_SANDBOX_REGIONS"
#: Which widget-publishing stand-ins ``up`` starts: a comma-separated list, ``all`` or ``none``.
ENV_COMPONENTS = "VARAI_SANDBOX_COMPONENTS"

#: The Debian package's binary (``apt-get install prometheus``, or ``make setup``).
PROMETHEUS_BINARY = "/usr/bin/prometheus"
#: Without an explicit port, Prometheus listens this far above the gateway (18080 -> 18090), or,
#: when the services start right there (gateway 19500, services from 19510), the fallback offset.
PROMETHEUS_PORT_OFFSET = 10
PROMETHEUS_PORT_FALLBACK_OFFSET = 5
#: Synthetic traffic: requests per second through the gateway by default, the most allowed, and
#: how long a generator runs before it stops by itself (a forgotten sandbox must not load the
#: machine forever).
DEFAULT_TRAFFIC_RPS = 20.0
MAX_TRAFFIC_RPS = 200.0
DEFAULT_TRAFFIC_MAX_SECONDS = 4 * 3600.0

#: Ports between two services' slots; blue is +0 and green +1, each further instance +2 more.
SERVICE_PORT_STRIDE = 10
#: Processes serving a live revision: one may die (or be killed by a drill) while another answers.
DEFAULT_INSTANCES = 2
#: One region unless the config names more (a region failure drill needs two).
DEFAULT_REGIONS = ("local",)
REGION_NAME = re.compile(r"^[a-z][a-z0-9-]{0,29}$")


@dataclass(frozen=True)
class SandboxSettings:
    home: Path
    host: str = "127.0.0.1"
    gateway_port: int = 18080
    service_port_base: int = 18100
    #: None: gateway_port + 10, or + 5 when +10 is a service port (see _default_prometheus_port).
    prometheus_port: int | None = None
    prometheus_binary: str = PROMETHEUS_BINARY
    #: 0 turns the load generator off (``up`` does not start it).
    traffic_rps: float = DEFAULT_TRAFFIC_RPS
    traffic_max_seconds: float = DEFAULT_TRAFFIC_MAX_SECONDS
    #: Requests per second through staging's load balancer (0: none), which staging's analysis judges.
    staging_traffic_rps: float = DEFAULT_TRAFFIC_RPS
    #: None: gateway_port - 20; the stand-ins listen at this base + their offset (see components.py).
    component_port_base: int | None = None
    #: The stand-ins ``up`` starts (names from components.COMPONENT_NAMES); None: all of them.
    components: tuple[str, ...] | None = None
    #: Processes serving a live revision (a candidate runs one until it goes live); the gateway
    #: fails over between them and the supervisor restarts the ones that die.
    instances: int = DEFAULT_INSTANCES
    #: Where a live revision runs: ``instances`` processes in each region, behind the gateway as
    #: a global front end that sends requests to one region at a time (the first, until a
    #: failover moves it); the others are warm standbys.
    regions: tuple[str, ...] = DEFAULT_REGIONS

    def __post_init__(self) -> None:
        home = Path(self.home)
        if not home.is_absolute():
            home = REPO_ROOT / home
        # Absolute and normalised: the home is part of every process's command line, which is
        # how a process is recognised as ours.
        object.__setattr__(self, "home", Path(os.path.abspath(home)))
        regions = tuple(self.regions) if isinstance(self.regions, (list, tuple)) else ()
        bad = [r for r in regions if not isinstance(r, str) or not REGION_NAME.match(r)]
        if not regions or bad or len(set(regions)) != len(regions):
            raise SandboxError(
                f"sandbox regions must be distinct names of lowercase letters, digits and '-', got "
                f"{self.regions!r}; change {ENV_REGIONS}"
            )
        object.__setattr__(self, "regions", regions)
        most = SERVICE_PORT_STRIDE // 2 // len(regions)
        if not isinstance(self.instances, int) or isinstance(self.instances, bool) or not 1 <= self.instances <= most:
            raise SandboxError(
                f"sandbox instances must be between 1 and {most} with {len(regions)} region(s) (each instance "
                f"takes two ports of a service's {SERVICE_PORT_STRIDE}), got {self.instances!r}; change {ENV_INSTANCES}"
            )
        last = (
            self.service_port_base
            + SERVICE_PORT_STRIDE * (len(SERVICE_NAMES) - 1)
            + len(COLOURS)
            - 1
            + len(COLOURS) * (self.total_instances - 1)
        )
        if self.prometheus_port is None:
            object.__setattr__(self, "prometheus_port", self._default_prometheus_port(last))
        for name, port in (
            ("gateway_port", self.gateway_port),
            ("service_port_base", self.service_port_base),
            ("prometheus_port", self.prometheus_port),
        ):
            if not isinstance(port, int) or not 1 <= port <= 65535:
                raise SandboxError(f"sandbox {name} must be a port number, got {port!r}")
        if last > 65535:
            raise SandboxError(f"sandbox service_port_base {self.service_port_base} leaves no room for 5 services")
        if self.service_port_base <= self.gateway_port <= last:
            raise SandboxError(
                f"sandbox gateway_port {self.gateway_port} falls inside the service port range "
                f"{self.service_port_base}-{last}; change {ENV_GATEWAY_PORT} or {ENV_PORT_BASE}"
            )
        if self.prometheus_port == self.gateway_port or (self.service_port_base <= self.prometheus_port <= last):
            raise SandboxError(
                f"sandbox prometheus_port {self.prometheus_port} collides with the gateway or the service port range "
                f"{self.service_port_base}-{last}; set {ENV_PROMETHEUS_PORT}"
            )
        self._check_components(last)
        if not 0 <= self.traffic_rps <= MAX_TRAFFIC_RPS:
            raise SandboxError(
                f"sandbox traffic_rps must be between 0 (off) and {MAX_TRAFFIC_RPS:g}, got {self.traffic_rps!r}"
                f"; change {ENV_TRAFFIC_RPS}"
            )
        if not 0 <= self.staging_traffic_rps <= MAX_TRAFFIC_RPS:
            raise SandboxError(
                f"sandbox staging_traffic_rps must be between 0 (off) and {MAX_TRAFFIC_RPS:g}, got "
                f"{self.staging_traffic_rps!r}; change {ENV_STAGING_TRAFFIC_RPS}"
            )
        if not 0 < self.traffic_max_seconds <= DEFAULT_TRAFFIC_MAX_SECONDS:
            raise SandboxError(
                f"sandbox traffic_max_seconds must be between 0 and {DEFAULT_TRAFFIC_MAX_SECONDS:g}, "
                f"got {self.traffic_max_seconds!r}"
            )

    def _check_components(self, last_service_port: int) -> None:
        from varai_deploy.sandbox.components import COMPONENT_MODULES, COMPONENT_NAMES, COMPONENT_PORT_GAP

        names = COMPONENT_NAMES if self.components is None else tuple(self.components)
        unknown = [n for n in names if n not in COMPONENT_MODULES]
        if unknown:
            raise SandboxError(
                f"unknown sandbox component(s) {', '.join(unknown)}; known: {', '.join(COMPONENT_NAMES)}"
                f" (set {ENV_COMPONENTS} to a comma-separated list, 'all' or 'none')"
            )
        object.__setattr__(self, "components", names)
        if self.component_port_base is None:
            object.__setattr__(self, "component_port_base", self.gateway_port - COMPONENT_PORT_GAP)
        taken = {self.gateway_port, self.prometheus_port}
        for name in names:
            port = self.component_port(name)
            if not 1 <= port <= 65535 or port in taken or self.service_port_base <= port <= last_service_port:
                raise SandboxError(
                    f"sandbox component {name} would listen on {port}, which collides with the gateway, "
                    f"Prometheus or the service port range; set {ENV_COMPONENT_PORT_BASE}"
                )
            taken.add(port)

    def _default_prometheus_port(self, last_service_port: int) -> int:
        for offset in (PROMETHEUS_PORT_OFFSET, PROMETHEUS_PORT_FALLBACK_OFFSET):
            port = self.gateway_port + offset
            if not self.service_port_base <= port <= last_service_port:
                return port
        return self.gateway_port + PROMETHEUS_PORT_OFFSET  # refused below, naming the variable to set

    @classmethod
    def load(cls, config_path: Path | None = None) -> SandboxSettings:
        """Read the environment file's ``sandbox:`` section, then apply env var overrides."""
        section = _section(config_path)
        return cls(
            home=_home(section),
            host=str(section.get("host") or "127.0.0.1"),
            gateway_port=_port(ENV_GATEWAY_PORT, section.get("gateway_port", 18080)),
            service_port_base=_port(ENV_PORT_BASE, section.get("service_port_base", 18100)),
            prometheus_port=_optional_port(ENV_PROMETHEUS_PORT, section.get("prometheus_port")),
            traffic_rps=_rate(ENV_TRAFFIC_RPS, section.get("traffic_rps", DEFAULT_TRAFFIC_RPS)),
            staging_traffic_rps=_rate(ENV_STAGING_TRAFFIC_RPS, section.get("staging_traffic_rps", DEFAULT_TRAFFIC_RPS)),
            component_port_base=_optional_port(ENV_COMPONENT_PORT_BASE, section.get("component_port_base")),
            components=_components(os.environ.get(ENV_COMPONENTS)),
            instances=_count(ENV_INSTANCES, section.get("instances", DEFAULT_INSTANCES)),
            regions=_regions(os.environ.get(ENV_REGIONS), section.get("regions", DEFAULT_REGIONS)),
        )

    @classmethod
    def current(cls) -> SandboxSettings:
        """The settings of the sandbox ``load()`` names as its last ``up`` saved them (ports, instances
        and regions as it runs them), or ``load()``'s own when it has not been up: what a process
        that acts on a running sandbox (a task, the platform) must use."""
        try:
            return cls.from_home(_home(_section(None)))
        except SandboxError:
            return cls.load()

    # -- persisted, for the processes `up` starts -----------------------------------------
    @property
    def settings_file(self) -> Path:
        """What ``up`` ran with (see save): the supervisor rebuilds the same settings from it."""
        return self.home / "settings.json"

    def save(self) -> Path:
        """Write the settings to ``settings_file`` (atomically), so a process started with only
        ``--home`` sees exactly the ports and instance count its ``up`` used, env vars included."""
        fields = {
            f.name: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for f in dataclasses.fields(self)
            for v in (getattr(self, f.name),)
        }
        write_json_atomic(self.settings_file, {"schema": 1, "settings": fields})
        return self.settings_file

    @classmethod
    def from_home(cls, home: Path | str) -> SandboxSettings:
        """The settings the last ``up`` of ``home`` saved; fields it did not save take their defaults."""
        path = Path(os.path.abspath(home)) / "settings.json"
        data = read_json(path)
        saved = data.get("settings") if isinstance(data, dict) else None
        if not isinstance(saved, dict):
            raise SandboxError(f"no sandbox settings in {path}; `python -m varai_deploy.sandbox up` writes them")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in saved.items() if k in known}
        values["home"] = Path(values.get("home") or home)
        for name in ("components", "regions"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        return cls(**values)

    # -- regions ----------------------------------------------------------------------------
    @property
    def total_instances(self) -> int:
        """Processes of a live revision across its regions: ``instances`` in each."""
        return self.instances * len(self.regions)

    def region_of(self, instance: int) -> str:
        """Instances ``0..instances-1`` run in the first region, the next ``instances`` in the second..."""
        return self.regions[instance // self.instances]

    def instances_in(self, region: str) -> range:
        if region not in self.regions:
            raise SandboxError(f"unknown sandbox region {region!r}; the sandbox runs in {', '.join(self.regions)}")
        first = self.regions.index(region) * self.instances
        return range(first, first + self.instances)

    # -- ports and URLs -------------------------------------------------------------------
    def port_for(self, service: str, colour: str, instance: int = 0) -> int:
        """Deterministic, so a restarted sandbox (or instance) comes back on the same ports.
        Instance 0 is the slot's own port (a candidate's); further instances are 2 ports apart,
        so both colours of a service stay within its stride."""
        check_service(service)
        check_colour(colour)
        if not isinstance(instance, int) or not 0 <= instance < self.total_instances:
            raise SandboxError(f"instance must be between 0 and {self.total_instances - 1}, got {instance!r}")
        return (
            self.service_port_base
            + SERVICE_PORT_STRIDE * SERVICE_NAMES.index(service)
            + COLOURS.index(colour)
            + len(COLOURS) * instance
        )

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    def component_port(self, name: str) -> int:
        from varai_deploy.sandbox.components import COMPONENT_NAMES

        assert self.component_port_base is not None
        return self.component_port_base + COMPONENT_NAMES.index(name)

    def component_url(self, name: str) -> str:
        return self.url_for_port(self.component_port(name))

    def service_url(self, service: str, colour: str, instance: int = 0) -> str:
        return f"http://{self.host}:{self.port_for(service, colour, instance)}"

    def url_for_port(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    # -- files under the home -------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.home / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.home / "state.lock"

    @property
    def routes_file(self) -> Path:
        return self.home / "routes.json"

    @property
    def scrape_targets_file(self) -> Path:
        """Prometheus file_sd targets of the service processes (see routes.write_scrape_targets)."""
        return self.home / "prometheus_targets.json"

    @property
    def prometheus_dir(self) -> Path:
        return self.home / "prometheus"

    @property
    def prometheus_config_file(self) -> Path:
        """Generated on every ``up`` (see prometheus.write_config); also how its process is known."""
        return self.prometheus_dir / "prometheus.yml"

    @property
    def prometheus_data_dir(self) -> Path:
        return self.prometheus_dir / "data"

    @property
    def traffic_dir(self) -> Path:
        return self.home / "traffic"

    @property
    def traffic_log(self) -> Path:
        """One JSON line per synthetic request (see traffic.py); rotated to ``requests.jsonl.1``."""
        return self.traffic_dir / "requests.jsonl"

    @property
    def credentials_file(self) -> Path:
        """Secrets the sandbox invented for its stand-ins (see credentials.py); 0600."""
        return self.home / "credentials.json"

    @property
    def connections_env_file(self) -> Path:
        """``export AIRFLOW_CONN_...`` lines for the stand-ins' connections; ``airflow.sh`` sources it."""
        return self.home / "connections.env"

    @property
    def faults_file(self) -> Path:
        return self.home / "faults.json"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def exit_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.exit.json"


def _section(config_path: Path | None) -> dict:
    """The environment file's ``sandbox:`` section (empty without the file)."""
    path = Path(config_path) if config_path else DEFAULT_CONFIG
    if not path.exists():
        return {}
    import yaml

    with path.open(encoding="utf-8") as fh:
        return (yaml.safe_load(fh) or {}).get("sandbox") or {}


def _home(section: dict) -> Path:
    """Where the sandbox lives: ``VARAI_SANDBOX_HOME``, else the config's, else ``.sandbox`` (from the repository)."""
    home = Path(os.environ.get(ENV_HOME) or section.get("home") or ".sandbox")
    return home if home.is_absolute() else REPO_ROOT / home


def _port(env_var: str, default: object) -> int:
    raw = os.environ.get(env_var)
    if raw is None or raw == "":
        return int(default)  # type: ignore[call-overload]
    try:
        return int(raw)
    except ValueError:
        raise SandboxError(f"{env_var} must be a port number, got {raw!r}") from None


def _optional_port(env_var: str, default: object) -> int | None:
    raw = os.environ.get(env_var)
    if (raw is None or raw == "") and default is None:
        return None
    return _port(env_var, default)


def _number(env_var: str, default: object, convert: type, what: str) -> Any:
    """The variable's value (the config's ``default`` when unset or empty) as ``convert`` makes it."""
    raw = os.environ.get(env_var)
    value = default if raw is None or raw == "" else raw
    try:
        return convert(value)
    except (TypeError, ValueError):
        raise SandboxError(f"{env_var} must be {what}, got {value!r}") from None


def _count(env_var: str, default: object) -> int:
    return _number(env_var, default, int, "a whole number")


def _components(raw: str | None) -> tuple[str, ...] | None:
    if raw is None or raw.strip() in ("", "all"):
        return None
    if raw.strip() == "none":
        return ()
    return tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


def _regions(raw: str | None, default: object) -> Any:
    """``VARAI_SANDBOX_REGIONS`` (comma-separated) over the config's list; validated by the settings."""
    if raw is None or raw.strip() == "":
        return tuple(default) if isinstance(default, (list, tuple)) else default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _rate(env_var: str, default: object) -> float:
    return _number(env_var, default, float, "requests per second (0 turns traffic off)")
