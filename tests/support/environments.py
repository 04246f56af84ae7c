"""The environments the integration tests release to: the shipped configs, the sandbox's with the
shortest windows that still judge real metrics (``make demo`` keeps the shipped ones).

Why each is as short as it can be, with Prometheus scraping every 1 s and 40 requests/s of traffic:
  * a rule is judged once ``rate_window + for`` seconds have passed (3 + 4 for the error rate,
    3 + 5 for p95 latency) and the release passes at ``duration``: 12 s leaves the slowest rule,
    fed by 6-second requests whose first answers come 6-7 s after the switch, four evaluations,
    and the health rule 5 s to count a revision that went bad 4 s after its switch;
  * ``min_requests`` (10) within the error window (4 s) is ~30 requests a service at 40 req/s;
  * the health gate's 3 answers 0.25 s apart, and 1 s of bake after the switch;
  * a DR drill's error ratio over 10 s, which a restore's outage leaves within about 10 s of it.
"""

from __future__ import annotations

from pathlib import Path

from varai_deploy.config import ENVIRONMENTS_DIR

#: section -> setting -> the tests' value, over include/environments/sandbox.yaml.
TEST_WINDOWS = {
    "release": {"health_interval_seconds": 0.25, "bake_seconds": 1},
    "analysis": {"duration_seconds": 12, "error_rate_for_seconds": 4, "latency_p95_for_seconds": 5},
    # A drill's steady state judged over 10 s (~250 requests at 40 req/s), held 3 s (three scrapes)
    # to count as back, and 40 s to get back to it.
    "dr_drills": {"steady_window_seconds": 10, "settle_seconds": 3, "limit_minutes": 0.67},
}


def sandbox_config(**sections: dict) -> dict:
    """The sandbox's config with the tests' windows, and ``sections`` merged over it."""
    import yaml

    config = yaml.safe_load((ENVIRONMENTS_DIR / "sandbox.yaml").read_text())
    for name, values in TEST_WINDOWS.items():
        config[name] = {**config.get(name, {}), **values}
    for name, values in sections.items():
        config[name] = {**config[name], **values} if isinstance(values, dict) and name in config else values
    return config


def write_environments(directory: Path, home: Path | None = None, **sections: dict) -> Path:
    """Every shipped environment into ``directory`` (for ``VARAI_ENVIRONMENTS_DIR``), the sandbox's as
    ``sandbox_config(**sections)`` and staging's as the sandbox runs it (``varai_deploy.sandbox.staging``,
    its windows the sandbox's, its Terraform state under ``home``: by default the sandbox's); returns
    ``directory``."""
    import yaml

    from varai_deploy.sandbox.settings import SandboxSettings
    from varai_deploy.sandbox.staging import staging_config

    directory.mkdir(parents=True, exist_ok=True)
    for shipped in ENVIRONMENTS_DIR.glob("*.yaml"):
        if shipped.name not in ("sandbox.yaml", "staging.yaml"):
            (directory / shipped.name).write_text(shipped.read_text())
    sandbox = sandbox_config(**sections)
    staging = staging_config(
        yaml.safe_load((ENVIRONMENTS_DIR / "staging.yaml").read_text()), sandbox, home or SandboxSettings.load().home
    )
    (directory / "sandbox.yaml").write_text(yaml.safe_dump(sandbox, sort_keys=False))
    (directory / "staging.yaml").write_text(yaml.safe_dump(staging, sort_keys=False))
    return directory
