"""Where the sandbox lives and listens.

Defaults come from the ``sandbox:`` section of ``include/environments/sandbox.yaml`` so the
sandbox and the DAGs agree on one source; environment variables override it so tests, CI
and a second checkout can run side by side without editing config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.validation import COLOURS, check_colour, check_service
from varai_deploy.services import SERVICE_NAMES

#: The repository root: plugins/varai_deploy/sandbox/settings.py -> parents[3].
REPO_ROOT = Path(__file__).resolve().parents[3]
PLUGINS_DIR = REPO_ROOT / "plugins"
DEFAULT_CONFIG = REPO_ROOT / "include" / "environments" / "sandbox.yaml"

ENV_HOME = "VARAI_SANDBOX_HOME"
ENV_GATEWAY_PORT = "VARAI_SANDBOX_GATEWAY_PORT"
ENV_PORT_BASE = "VARAI_SANDBOX_PORT_BASE"

#: Ports between two services' slots; blue is +0 and green +1.
SERVICE_PORT_STRIDE = 10


@dataclass(frozen=True)
class SandboxSettings:
    home: Path
    host: str = "127.0.0.1"
    gateway_port: int = 18080
    service_port_base: int = 18100

    def __post_init__(self) -> None:
        home = Path(self.home)
        if not home.is_absolute():
            home = REPO_ROOT / home
        # Absolute and normalised: the home is part of every process's command line, which is
        # how a process is recognised as ours.
        object.__setattr__(self, "home", Path(os.path.abspath(home)))
        last = self.service_port_base + SERVICE_PORT_STRIDE * (len(SERVICE_NAMES) - 1) + len(COLOURS) - 1
        for name, port in (
            ("gateway_port", self.gateway_port),
            ("service_port_base", self.service_port_base),
        ):
            if not isinstance(port, int) or not 1 <= port <= 65535:
                raise SandboxError(f"sandbox {name} must be a port number, got {port!r}")
        if last > 65535:
            raise SandboxError(
                f"sandbox service_port_base {self.service_port_base} leaves no room for 5 services"
            )
        if self.service_port_base <= self.gateway_port <= last:
            raise SandboxError(
                f"sandbox gateway_port {self.gateway_port} falls inside the service port range "
                f"{self.service_port_base}-{last}; change {ENV_GATEWAY_PORT} or {ENV_PORT_BASE}"
            )

    @classmethod
    def load(cls, config_path: Path | None = None) -> SandboxSettings:
        """Read the environment file's ``sandbox:`` section, then apply env var overrides."""
        section: dict = {}
        path = Path(config_path) if config_path else DEFAULT_CONFIG
        if path.exists():
            import yaml

            with path.open(encoding="utf-8") as fh:
                section = (yaml.safe_load(fh) or {}).get("sandbox") or {}
        home = os.environ.get(ENV_HOME) or section.get("home") or ".sandbox"
        return cls(
            home=Path(home),
            host=str(section.get("host") or "127.0.0.1"),
            gateway_port=_port(ENV_GATEWAY_PORT, section.get("gateway_port", 18080)),
            service_port_base=_port(ENV_PORT_BASE, section.get("service_port_base", 18100)),
        )

    # -- ports and URLs -------------------------------------------------------------------
    def port_for(self, service: str, colour: str) -> int:
        """Deterministic, so a restarted sandbox comes back on the same ports."""
        check_service(service)
        check_colour(colour)
        return (
            self.service_port_base
            + SERVICE_PORT_STRIDE * SERVICE_NAMES.index(service)
            + COLOURS.index(colour)
        )

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    def service_url(self, service: str, colour: str) -> str:
        return f"http://{self.host}:{self.port_for(service, colour)}"

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


def _port(env_var: str, default: object) -> int:
    raw = os.environ.get(env_var)
    if raw is None or raw == "":
        return int(default)  # type: ignore[call-overload]
    try:
        return int(raw)
    except ValueError:
        raise SandboxError(f"{env_var} must be a port number, got {raw!r}") from None
