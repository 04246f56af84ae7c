"""Misbehaviour registered for a version before it is deployed, so rollback is exercised for real.

``<home>/faults.json`` maps a version to a list of fault records, each one mode plus its
parameters and optionally the services it applies to (all services when absent)::

    {"schema": 1, "faults": {"v2.0.0": [{"mode": "crash", "services": null},
                                         {"mode": "errors", "rate": 0.5, "services": ["recommendation"]},
                                         {"mode": "unhealthy", "after_seconds": 5, "services": null},
                                         {"mode": "flap", "period_seconds": 1, "services": ["analytics"]}]}}

A service process reads the file once at start (a fault belongs to a deployed version, as a
bug would), and again on SIGHUP (``Sandbox.apply_faults``, ``fault --now``: a serving revision
that goes bad, its faults' clock starting then). Adding a mode means adding it to ``MODES`` and
teaching ``service.py`` what it does.

``flap`` models an instance whose health comes and goes on its own (a leak freed by GC, a pool
exhausted and refilled, a dependency timing out and recovering): its health endpoints answer 200
for ``period_seconds`` after the process starts, 503 for the next ``period_seconds``, and so on,
whoever asks. It is a matter of time, not of requests, so every prober (the candidate's health
gate, the analysis, the load generator) sees the same instance at the same moment.
Its other endpoints keep working. A prober whose probes arrive at least ``i`` and at most
``period_seconds`` apart sees every healthy phase and at most ``ceil(period_seconds / i)``
consecutive 503s. E.g. the sandbox analysis probes every 1 s plus its own work (1-2 s apart) and
rolls back at 3 consecutive failures: with a period of 2 s it counts at most 2, so the health rule
never fires on such a flap (and the metric rules leave health probes out).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.state import StateStore, read_json, write_json_atomic
from varai_deploy.sandbox.validation import check_service, check_version

#: mode -> the parameter it needs (None: no parameter).
MODES: dict[str, str | None] = {
    "crash": None,  # exits non-zero at start, after printing "fault injected: crash at start"
    "unhealthy": None,  # health endpoints answer 503 (after after_seconds, if given); the rest works
    "errors": "rate",  # that fraction (0-1] of working-endpoint answers are 500
    "slow": "latency_seconds",  # every answer but /metrics and health is delayed this long
    # health endpoints answer 200 for period_seconds after start, 503 for the next period_seconds,
    # 200 again, and so on (by the clock, not per request); the rest works
    "flap": "period_seconds",
    # not the service but the platform: a switch to this version is applied at once, and the call
    # that made it returns only latency_seconds later (a slow API answer; what a worker that dies
    # mid-switch leaves behind)
    "slow_switch": "latency_seconds",
    # the search finds nothing: /ai/discover answers 200 with no suggestions (health, errors and latency
    # look fine; only the widget's search shows it)
    "no_results": None,
    # the release refuses browsers: a working endpoint answers 403 to a request whose Sec-Fetch-Site is
    # same-site or cross-site (a Fetch Metadata isolation policy meant for a dashboard, shipped to the API).
    # Health checks, the analysis's search and the load generator send no such header and see nothing
    # wrong; only a shopper's browser on a storefront (Phase 4) does
    "browser_refused": None,
}
CRASH_EXIT_CODE = 3
CRASH_MESSAGE = "fault injected: crash at start"
MAX_AFTER_SECONDS = 24 * 3600
MAX_PERIOD_SECONDS = 3600


@dataclass(frozen=True)
class Fault:
    mode: str
    services: tuple[str, ...] | None = None
    rate: float | None = None
    latency_seconds: float | None = None
    #: For ``unhealthy``: healthy for this long after the process starts, then 503 for good.
    after_seconds: float | None = None
    #: For ``flap``: the length of each healthy and each unhealthy phase.
    period_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SandboxError(f"unknown fault mode {self.mode!r}; expected one of: {', '.join(MODES)}")
        for service in self.services or ():
            check_service(service)
        if self.mode == "errors" and not (self.rate is not None and 0 < self.rate <= 1):
            raise SandboxError("fault mode 'errors' needs a rate between 0 (exclusive) and 1, e.g. 0.5")
        if self.mode in ("slow", "slow_switch") and not (
            self.latency_seconds is not None and 0 < self.latency_seconds <= 60
        ):
            raise SandboxError(f"fault mode {self.mode!r} needs a latency in seconds between 0 and 60, e.g. 1.5")
        if self.after_seconds is not None:
            if self.mode not in ("unhealthy", "flap"):
                raise SandboxError(
                    f"after_seconds only applies to fault modes 'unhealthy' and 'flap', not {self.mode!r}"
                )
            if not 0 <= self.after_seconds <= MAX_AFTER_SECONDS:
                raise SandboxError(
                    f"fault mode {self.mode!r} takes after_seconds between 0 and {MAX_AFTER_SECONDS}, e.g. 5"
                )
        if self.period_seconds is not None and self.mode != "flap":
            raise SandboxError(f"period_seconds only applies to fault mode 'flap', not {self.mode!r}")
        if self.mode == "flap" and not (
            self.period_seconds is not None and 0 < self.period_seconds <= MAX_PERIOD_SECONDS
        ):
            raise SandboxError(
                f"fault mode 'flap' needs a period in seconds between 0 (exclusive) and {MAX_PERIOD_SECONDS}, "
                "e.g. 1 (healthy for 1 s, then 503 for 1 s, and so on)"
            )

    def applies_to(self, service: str) -> bool:
        return self.services is None or service in self.services

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "services": list(self.services) if self.services else None}
        if self.rate is not None:
            out["rate"] = self.rate
        if self.latency_seconds is not None:
            out["latency_seconds"] = self.latency_seconds
        if self.after_seconds is not None:
            out["after_seconds"] = self.after_seconds
        if self.period_seconds is not None:
            out["period_seconds"] = self.period_seconds
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        services = data.get("services")
        return cls(
            mode=data["mode"],
            services=tuple(services) if services else None,
            rate=data.get("rate"),
            latency_seconds=data.get("latency_seconds"),
            after_seconds=data.get("after_seconds"),
            period_seconds=data.get("period_seconds"),
        )


class FaultStore:
    """Registration (under the sandbox lock) and lookup of faults."""

    def __init__(self, faults_file: Path, lock: StateStore) -> None:
        self.faults_file = faults_file
        self.lock = lock

    def all(self) -> dict[str, list[dict[str, Any]]]:
        return load_faults(self.faults_file)

    def register(
        self,
        version: str,
        mode: str,
        services: Iterable[str] | None = None,
        *,
        rate: float | None = None,
        latency_seconds: float | None = None,
        after_seconds: float | None = None,
        period_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Add a fault; registering the same (version, mode) again replaces the earlier one."""
        check_version(version)
        services = tuple(dict.fromkeys(services)) if services else None
        fault = Fault(
            mode=mode,
            services=services,
            rate=rate,
            latency_seconds=latency_seconds,
            after_seconds=after_seconds,
            period_seconds=period_seconds,
        )
        with self.lock.locked():
            faults = self.all()
            entries = [f for f in faults.get(version, []) if f.get("mode") != mode]
            faults[version] = [*entries, fault.to_dict()]
            self._write(faults)
        return fault.to_dict()

    def switch_latency(self, version: str, service: str) -> float:
        """``slow_switch``: how long a switch of ``service`` to ``version`` takes to answer (0: at once)."""
        for raw in self.all().get(version, []):
            if raw.get("mode") == "slow_switch" and (not raw.get("services") or service in raw["services"]):
                return float(raw.get("latency_seconds") or 0)
        return 0.0

    def clear(self, version: str | None = None) -> int:
        """Remove the faults of ``version`` (all versions when None); returns how many went."""
        if version is not None:
            check_version(version)
        with self.lock.locked():
            faults = self.all()
            if version is None:
                removed = sum(len(v) for v in faults.values())
                faults = {}
            else:
                removed = len(faults.pop(version, []))
            self._write(faults)
        return removed

    def _write(self, faults: dict[str, list[dict[str, Any]]]) -> None:
        write_json_atomic(self.faults_file, {"schema": 1, "faults": faults})


def load_faults(faults_file: Path) -> dict[str, list[dict[str, Any]]]:
    data = read_json(faults_file, {}) or {}
    faults = data.get("faults") if isinstance(data, dict) else None
    return {v: list(entries) for v, entries in (faults or {}).items() if isinstance(entries, list)}


@dataclass(frozen=True)
class ActiveFaults:
    """What one service process at one version must do wrong."""

    crash: bool = False
    unhealthy: bool = False
    #: Seconds after start before ``unhealthy`` takes effect (0: from the start).
    unhealthy_after_seconds: float = 0.0
    error_rate: float = 0.0
    latency_seconds: float = 0.0
    #: ``flap``: health alternates 200 / 503 every this many seconds from start (0: no flap)...
    flap_period_seconds: float = 0.0
    #: ...once this many seconds after start have passed (healthy until then).
    flap_after_seconds: float = 0.0
    no_results: bool = False
    browser_refused: bool = False

    @classmethod
    def for_process(cls, faults_file: Path, version: str, service: str) -> ActiveFaults:
        active: dict[str, Any] = {}
        for raw in load_faults(faults_file).get(version, []):
            try:
                fault = Fault.from_dict(raw)
            except (SandboxError, KeyError, TypeError):
                continue  # a hand-edited bad entry must not take the service down
            if not fault.applies_to(service):
                continue
            if fault.mode == "crash":
                active["crash"] = True
            elif fault.mode == "unhealthy":
                active["unhealthy"] = True
                active["unhealthy_after_seconds"] = float(fault.after_seconds or 0)
            elif fault.mode == "errors":
                active["error_rate"] = float(fault.rate or 0)
            elif fault.mode == "slow":
                active["latency_seconds"] = float(fault.latency_seconds or 0)
            elif fault.mode == "flap":
                active["flap_period_seconds"] = float(fault.period_seconds or 0)
                active["flap_after_seconds"] = float(fault.after_seconds or 0)
            elif fault.mode == "no_results":
                active["no_results"] = True
            elif fault.mode == "browser_refused":
                active["browser_refused"] = True
        return cls(**active)

    def describe(self) -> list[str]:
        out = ["crash"] if self.crash else []
        if self.unhealthy:
            after = self.unhealthy_after_seconds
            out.append(f"unhealthy(after={after:g}s)" if after else "unhealthy")
        if self.error_rate:
            out.append(f"errors(rate={self.error_rate})")
        if self.latency_seconds:
            out.append(f"slow(latency={self.latency_seconds}s)")
        if self.flap_period_seconds:
            after = f", after={self.flap_after_seconds:g}s" if self.flap_after_seconds else ""
            out.append(f"flap(period={self.flap_period_seconds:g}s{after})")
        if self.no_results:
            out.append("no_results")
        if self.browser_refused:
            out.append("browser_refused")
        return out

    def flap_unhealthy(self, elapsed: float) -> bool:
        """``flap``: whether ``elapsed`` seconds after start fall in an unhealthy (odd) phase."""
        period, elapsed = self.flap_period_seconds, elapsed - self.flap_after_seconds
        return bool(period) and elapsed >= 0 and int(elapsed // period) % 2 == 1
