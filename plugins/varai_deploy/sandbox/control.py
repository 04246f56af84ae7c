"""``Sandbox``: the control plane the ``LocalPlatform``, the CLI and the tests drive.

Every method is safe to call from separate processes at once (Airflow tasks for different
services run in parallel): all state is on disk and every change happens under the state lock,
with the process started or stopped inside the same critical section so the record never lies
for long. Mutating methods are idempotent so a retried task converges.

A live revision runs ``settings.instances`` processes in each of ``settings.regions`` (a candidate
runs one, instance 0, until it goes live): the gateway fails over between those of the active
region and the supervisor process calls :meth:`heal` to restart the ones that die, which is
production's "automatic failover to healthy instances". A region can be taken down as a whole
(:meth:`region_down`: its processes killed, none restarted) and the front end moved to another
(:meth:`fail_over`), the guide's manual failover to a secondary region.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from datetime import UTC, datetime
from typing import Any

from varai_deploy.sandbox import components, notifications, processes, prometheus, traffic
from varai_deploy.sandbox.errors import PortInUseError, SandboxError, SwitchConflictError
from varai_deploy.sandbox.faults import FaultStore
from varai_deploy.sandbox.processes import (
    GATEWAY_MODULE,
    LAUNCHER_MODULE,
    SERVICE_MODULE,
    SUPERVISOR_MODULE,
    TRAFFIC_MODULE,
    Marker,
)
from varai_deploy.sandbox.routes import active_region, write_routes, write_scrape_targets
from varai_deploy.sandbox.settings import (
    DEFAULT_TRAFFIC_RPS,
    ENV_COMPONENT_PORT_BASE,
    ENV_GATEWAY_PORT,
    ENV_PORT_BASE,
    ENV_PROMETHEUS_PORT,
    MAX_TRAFFIC_RPS,
    SandboxSettings,
)
from varai_deploy.sandbox.state import StateStore, instance_record, instance_records, write_json_atomic
from varai_deploy.sandbox.validation import check_colour, check_service, check_version, other_colour
from varai_deploy.services import SERVICE_NAMES

#: ``switch(expect_live=...)`` not given: the live slot is not checked.
UNCHECKED = object()
GATEWAY_START_TIMEOUT = 15.0
SERVICE_START_TIMEOUT = 15.0
PROMETHEUS_START_TIMEOUT = 30.0
EXIT_CODE_WAIT = 1.0
#: How often the supervisor looks for dead live instances (the most a failover lasts, before the
#: new process's own start).
SUPERVISOR_INTERVAL = 0.5
#: heal() reads a dead instance's exit code under the state lock; its wrapper writes it at once.
HEAL_EXIT_CODE_WAIT = 0.2
#: A slot keeps this many of its latest restarts in ``restarts``.
RESTARTS_KEPT = 20
#: kill_instance() returns once the process is gone, or after this long.
KILL_WAIT = 2.0


def _describe(slot: Any) -> str:
    return f"{slot[1]} ({slot[0]})" if slot else "nothing"


def _instance_name(service: str, colour: str, instance: int) -> str:
    """Log and exit file name: instance 0 keeps the slot's own name, as before there were replicas."""
    return f"{service}-{colour}" if instance == 0 else f"{service}-{colour}-{instance}"


def _instance_label(service: str, colour: str, instance: int) -> str:
    return f"{service} ({colour})" if instance == 0 else f"{service} ({colour}, instance {instance})"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Sandbox:
    """The sandbox under one home: its gateway, its service processes and its faults."""

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self.settings = settings or SandboxSettings.load()
        self.store = StateStore(self.settings.state_file, self.settings.lock_file)
        self.fault_store = FaultStore(self.settings.faults_file, self.store)

    # -- lifecycle --------------------------------------------------------------------------
    def up(self) -> dict[str, Any]:
        """Start what should be running and is not: the gateway, Prometheus, every recorded
        service process that is live or idle-and-running but whose process is gone (crash
        recovery: every instance of a live revision, instance 0 of an idle one), the supervisor,
        and the traffic generator (unless ``traffic_rps`` is 0 or it was stopped)."""
        s = self.settings
        prometheus.check_installed(s)
        for directory in (s.home, s.logs_dir, s.run_dir):
            directory.mkdir(parents=True, exist_ok=True)
        s.save()  # before the supervisor starts: it reads them
        waits: list[tuple[str, str, dict, dict]] = []
        with self.store.transaction() as state:
            gateway = state["gateway"]
            start_gateway = not (gateway and self._gateway_running(gateway) and gateway["port"] == s.gateway_port)
            restarts = []
            for name, record in state["services"].items():
                for colour, slot in record["slots"].items():
                    if slot.get("state") != "running":
                        continue
                    live = record["live"] == colour
                    self._tidy_replicas(name, colour, slot, live)
                    dead = self._dead_instances(name, colour, slot, live, state["regions"]["down"])
                    restarts += [(name, colour, slot, i) for i in dead]
            needs = [(s.port_for(n, c, i), _instance_label(n, c, i), ENV_PORT_BASE) for n, c, _, i in restarts]
            if start_gateway:
                if gateway:  # ours, but on a port the settings no longer name
                    processes.stop(self._recorded_pids(gateway, self._gateway_marker(gateway["port"])))
                needs.insert(0, (s.gateway_port, "the sandbox gateway", ENV_GATEWAY_PORT))
            prom = state["components"].get("prometheus")
            start_prometheus = not (prom and self._prometheus_running(prom) and prom.get("port") == s.prometheus_port)
            if start_prometheus:
                if prom:  # ours, but on a port the settings no longer name
                    processes.stop(self._recorded_pids(prom, self._prometheus_marker(prom.get("port"))))
                assert s.prometheus_port is not None
                needs.append((s.prometheus_port, "the sandbox Prometheus", ENV_PROMETHEUS_PORT))
            stand_ins = self._stale_components(state)
            needs += [(s.component_port(c.name), f"the sandbox {c.name}", ENV_COMPONENT_PORT_BASE) for c in stand_ins]
            self._require_free(needs)
            for component in stand_ins:
                port = s.component_port(component.name)
                if component.prepare is not None:
                    component.prepare(s, port)
                state["components"][component.name] = self._spawn_component(
                    component.name, component.marker(s, port), port=port
                )
            for name, colour, slot, instance in restarts:
                waits.append((name, colour, slot, self._restart_instance(name, colour, slot, instance)))
            write_routes(self.settings, state)
            write_scrape_targets(self.settings, state)
            self._prepare_gateway()
            prometheus.write_config(s)
            if start_prometheus:
                state["components"]["prometheus"] = self._spawn_component(
                    "prometheus", self._prometheus_marker(s.prometheus_port), port=s.prometheus_port
                )
            if start_gateway:
                marker = self._gateway_marker(s.gateway_port)
                spawned = processes.spawn(
                    marker.argv(),
                    log_file=s.log_file("gateway"),
                    exit_file=s.exit_file("gateway"),
                    cwd=s.home,
                )
                state["gateway"] = {
                    "pid": spawned.pid,
                    "wrapper_pid": spawned.wrapper_pid,
                    "starttime": spawned.starttime,
                    "port": s.gateway_port,
                    "started_at": time.time(),
                }
        self._wait_gateway()
        self._wait_prometheus()
        for component in components.enabled(s):
            self._wait_component(component)
            if component.after_start is not None:
                component.after_start(s, s.component_port(component.name))
        components.write_connections_env(s)
        for name, colour, slot, process in waits:
            processes.wait_listening(
                s.host,
                process["port"],
                SERVICE_START_TIMEOUT,
                lambda n=name, c=colour, sl=slot, r=process: self._instance_running(n, c, sl, r),
            )
        # Last, so its first requests find the gateway (and the restarted services) answering.
        with self.store.transaction() as state:
            self._ensure_supervisor(state)
            record = state["components"].get("traffic")
            if record and not record.get("stopped"):
                rps = float(record.get("rps") or s.traffic_rps or DEFAULT_TRAFFIC_RPS)
                self._ensure_traffic(state, rps)
            elif not record and s.traffic_rps > 0:
                self._ensure_traffic(state, s.traffic_rps)
        return self.status()

    def down(self, purge: bool = False) -> None:
        """Stop every process this home started (recorded or not); keep the record unless purging."""
        s = self.settings
        if not s.home.exists():
            processes.stop(processes.find_ours(s.home))
            return
        # The supervisor and the load generator first, and before taking the lock: the supervisor
        # must not restart what down stops (and one waiting for the lock would only act on its
        # SIGTERM once down had waited out its grace); the gateway going away under the load
        # generator is not an outage to log.
        self._stop_watchers(self.store.read(), scan=True)
        with self.store.locked():
            state = self.store.read()
            self._stop_watchers(state, scan=False)  # in case an `up` started them meanwhile
            pids: list[int | None] = []
            stand_ins = components.enabled(s)
            for component in stand_ins:
                record = state["components"].get(component.name)
                if record:
                    if component.shutdown is not None:
                        component.shutdown(s, record)
                    pids += self._recorded_pids(record, component.marker(s, int(record["port"])))
            prom = state["components"].get("prometheus")
            if prom:
                pids += self._recorded_pids(prom, self._prometheus_marker(prom.get("port")))
            if state["gateway"]:
                pids += self._recorded_pids(state["gateway"], self._gateway_marker(state["gateway"]["port"]))
            for name, record in state["services"].items():
                for colour, slot in record["slots"].items():
                    pids += self._slot_pids(name, colour, slot)
            pids += processes.find_ours(
                s.home, [c.marker(s, int(state["components"].get(c.name, {}).get("port") or 0)) for c in stand_ins]
            )
            processes.stop(pids)
            if purge:
                shutil.rmtree(s.home, ignore_errors=True)
                return
            state["gateway"] = None
            state["components"] = {}
            write_json_atomic(s.state_file, state)

    def is_up(self) -> bool:
        gateway = self.store.read()["gateway"]
        return bool(gateway and self._gateway_running(gateway) and self._gateway_answers(gateway["port"]))

    def status(self) -> dict[str, Any]:
        state = self.store.read()
        services: dict[str, Any] = {}
        for name in SERVICE_NAMES:
            record = state["services"][name]
            live = record["live"]
            idle = other_colour(live) if live else "blue"
            services[name] = {
                "live": self._view(name, live, record["slots"][live]) if live else None,
                "idle": self._view(name, idle, record["slots"][idle]) if idle in record["slots"] else None,
            }
        generator = state["components"].get("traffic")
        running = bool(generator and self._traffic_running(generator))
        endpoints = {"gateway": self.settings.gateway_url, "prometheus": self.settings.prometheus_url}
        for component in components.enabled(self.settings):
            record = state["components"].get(component.name)
            if record:
                endpoints[component.name] = component.url(self.settings, int(record["port"]))
        supervisor = state["components"].get("supervisor")
        return {
            "services": services,
            "regions": self._regions_view(state),
            "endpoints": endpoints,
            "traffic": {"running": running, "rps": float(generator["rps"]) if running else 0.0},
            "supervisor": {"running": bool(supervisor and self._supervisor_running(supervisor))},
        }

    # -- synthetic traffic -----------------------------------------------------------------
    def start_traffic(self, rps: float | None = None) -> dict[str, Any]:
        """Run the load generator at ``rps`` (default: the settings' rate, or 20 if that is 0);
        restarts it when it runs at another rate, a no-op when it already runs at this one."""
        if not self.is_up():
            raise SandboxError("the sandbox is not up; start it with `python -m varai_deploy.sandbox up`")
        rate = float(rps if rps is not None else (self.settings.traffic_rps or DEFAULT_TRAFFIC_RPS))
        if not 0 < rate <= MAX_TRAFFIC_RPS:
            raise SandboxError(f"traffic rps must be more than 0 and at most {MAX_TRAFFIC_RPS:g}, got {rate:g}")
        with self.store.transaction() as state:
            self._ensure_traffic(state, rate)
        return self.status()["traffic"]

    def stop_traffic(self) -> dict[str, Any]:
        """Stop the load generator; ``up`` leaves it stopped until start_traffic() or a down/up."""
        with self.store.transaction() as state:
            record = state["components"].get("traffic")
            if record:
                processes.stop(self._recorded_pids(record, self._traffic_marker(record)))
            state["components"]["traffic"] = {**(record or {}), "stopped": True, "stopped_at": time.time()}
        return self.status()["traffic"]

    def stop_supervisor(self) -> dict[str, Any]:
        """Stop the supervisor until the next ``up``: dead live instances then stay dead (a drill of
        supervision failing; ``heal()`` still restarts them when called)."""
        with self.store.transaction() as state:
            record = state["components"].pop("supervisor", None)
            if record:
                processes.stop(self._recorded_pids(record, self._supervisor_marker(record)))
        return self.status()["supervisor"]

    def traffic_report(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        """What the load generator saw for requests sent in [since, until] (epoch seconds):
        ``total``, ``failed`` (status 0 or >= 500), ``error_rate``, ``by_status`` {code: n},
        ``by_version`` / ``by_service`` / ``by_path`` {key: {"total", "failed"}},
        ``first_failure_ts``, ``last_failure_ts``, ``failures`` (the first 100 failed requests,
        as logged) and ``failures_truncated``."""
        return traffic.report(self.settings.traffic_log, since, until)

    # -- blue-green ------------------------------------------------------------------------
    def start_candidate(self, service: str, version: str, image: str | None = None) -> dict[str, Any]:
        """Run ``version`` in the idle colour without touching routing; idempotent for retries."""
        check_service(service)
        check_version(version)
        if not self.is_up():
            raise SandboxError("the sandbox is not up; start it with `python -m varai_deploy.sandbox up`")
        with self.store.transaction() as state:
            region = self.settings.region_of(0)
            if region in state["regions"]["down"]:
                raise SandboxError(
                    f"cannot start a candidate of {service}: its region {region} is down; "
                    f"bring it back with `varai-sandbox region up {region}`"
                )
            record = state["services"][service]
            colour = other_colour(record["live"]) if record["live"] else "blue"
            slot = record["slots"].get(colour)
            if (
                slot
                and slot["version"] == version
                and slot.get("state") == "running"
                and self._slot_running(service, colour, slot)
            ):
                return self._candidate(service, colour, slot)
            if slot:
                processes.stop(self._slot_pids(service, colour, slot))
            port = self.settings.port_for(service, colour)
            self._require_free([(port, f"{service} ({colour})", ENV_PORT_BASE)])
            slot = {"version": version, "image": image, **self._spawn_service(service, colour, version)}
            record["slots"][colour] = slot
            write_scrape_targets(self.settings, state)
            return self._candidate(service, colour, slot)

    def switch(
        self, service: str, colour: str, version: str | None = None, expect_live: Any = UNCHECKED
    ) -> dict[str, Any]:
        """Make ``colour`` live in one atomic routing change, with all its instances (the
        candidate's one, and replicas started now); the other colour keeps running.

        Checked, when asked: ``colour`` must run ``version`` (the revision that was health-checked)
        and the live slot must be ``expect_live`` (``(colour, version)``, or None for nothing live);
        otherwise something changed since the caller looked, and nothing moves.
        """
        check_service(service)
        check_colour(colour)
        with self.store.transaction() as state:
            record = state["services"][service]
            slot = record["slots"].get(colour)
            if not slot or slot.get("state") != "running" or not self._slot_running(service, colour, slot):
                what = f"{slot['version']} is {slot.get('state')}, not running" if slot else "nothing deployed"
                raise SandboxError(
                    f"cannot switch {service} to {colour}: {what} there; start a healthy candidate first"
                )
            if version is not None and slot["version"] != version:
                raise SwitchConflictError(
                    f"refusing to switch {service} to {colour}: it now runs {slot['version']}, not {version}"
                )
            live = record["live"]
            current = (live, record["slots"][live]["version"]) if live else None
            if expect_live is not UNCHECKED and current != (tuple(expect_live) if expect_live else None):
                raise SwitchConflictError(
                    f"refusing to switch {service}: live is {_describe(current)}, expected {_describe(expect_live)}"
                )
            previous = record["live"]
            # Before routing moves (a replica port another program holds refuses the switch); not
            # waited for: the gateway fails over from a replica that does not listen yet.
            spawned = self._start_replicas(service, colour, slot, state["regions"]["down"])
            self._wait_serving_replicas(service, colour, slot, spawned, active_region(state, self.settings))
            if previous != colour:
                record["live"] = colour
            if previous != colour or spawned:
                write_routes(self.settings, state)
                write_scrape_targets(self.settings, state)
            other = other_colour(colour)
            result = {
                "service": service,
                "live": self._view(service, colour, slot),
                "previous": self._view(service, other, record["slots"][other]) if other in record["slots"] else None,
            }
        # Outside the lock: the switch is done, only its answer is late.
        latency = self.fault_store.switch_latency(slot["version"], service) if previous != colour else 0.0
        if latency:
            time.sleep(latency)
        return result

    def remove(self, service: str) -> None:
        """Stop both colours of a service and forget them: the service as before its first release."""
        check_service(service)
        with self.store.transaction() as state:
            record = state["services"][service]
            for colour, slot in record["slots"].items():
                processes.stop(self._slot_pids(service, colour, slot))
            record["slots"], record["live"] = {}, None
            write_routes(self.settings, state)
            write_scrape_targets(self.settings, state)

    def retire(self, service: str, colour: str) -> dict[str, Any]:
        """Stop a non-live colour after a release; its version stays recorded for rollback."""
        return self._stop_slot(service, colour, "retired")

    def discard(self, service: str, colour: str) -> dict[str, Any]:
        """Stop a candidate that failed its checks and mark it failed."""
        return self._stop_slot(service, colour, "failed")

    def process_state(self, service: str, colour: str) -> dict[str, Any]:
        """Is that colour's process running, and if not, how did it end (exit code, log tail)?"""
        check_service(service)
        check_colour(colour)
        slot = self.store.read()["services"][service]["slots"].get(colour)
        name = f"{service}-{colour}"
        running, pid, exit_code = False, None, None
        if slot:
            pid = slot.get("pid")
            running = self._slot_running(service, colour, slot)
            if not running:
                exit_code = self._exit_code(name, slot, EXIT_CODE_WAIT)
        return {
            "running": running,
            "pid": pid,
            "exit_code": exit_code,
            "version": slot["version"] if slot else None,
            "state": slot.get("state") if slot else None,
            "log_tail": processes.log_tail(self.settings.log_file(name)),
        }

    # -- faults ----------------------------------------------------------------------------
    def register_fault(
        self,
        version: str,
        mode: str,
        services: list[str] | None = None,
        *,
        rate: float | None = None,
        latency_seconds: float | None = None,
        after_seconds: float | None = None,
        period_seconds: float | None = None,
    ) -> dict[str, Any]:
        return self.fault_store.register(
            version,
            mode,
            services,
            rate=rate,
            latency_seconds=latency_seconds,
            after_seconds=after_seconds,
            period_seconds=period_seconds,
        )

    def apply_faults(self, version: str) -> list[str]:
        """Make the running processes of ``version`` take its faults now (they read them at start
        otherwise), each fault's clock (``after_seconds``, a flap's phases) starting now: a revision
        that goes bad while it serves. Returns the ``service-colour`` slots told (SIGHUP)."""
        check_version(version)
        told = []
        for service, record in self.store.read()["services"].items():
            for colour, slot in record["slots"].items():
                if slot.get("version") != version:
                    continue
                running = [r for _, r in instance_records(slot) if self._instance_running(service, colour, slot, r)]
                for process in running:
                    os.kill(process["pid"], signal.SIGHUP)
                if running:
                    told.append(f"{service}-{colour}")
        return sorted(told)

    def clear_faults(self, version: str | None = None) -> int:
        return self.fault_store.clear(version)

    def faults(self) -> dict[str, list[dict[str, Any]]]:
        return self.fault_store.all()

    # -- supervision: instances of a live revision ------------------------------------------
    def kill_instance(self, service: str, instance: int | None = None) -> dict[str, Any]:
        """SIGKILL one process of ``service``'s live revision (by default the first of the active
        region, one users are being served by), as a crash would: how a drill proves that the
        gateway fails over and the supervisor brings the instance back. No lock: it changes no
        record (the dead process is the point). Returns ``service``, ``colour``, ``version``,
        ``instance``, ``region``, ``pid`` and ``killed_at`` (ISO 8601, UTC)."""
        check_service(service)
        state = self.store.read()
        record = state["services"][service]
        colour = record["live"]
        if not colour:
            raise SandboxError(f"cannot kill an instance of {service}: no revision of it is live")
        if instance is None:
            instance = self.settings.instances_in(active_region(state, self.settings))[0]
        count = self.settings.total_instances
        if not isinstance(instance, int) or isinstance(instance, bool) or not 0 <= instance < count:
            raise SandboxError(
                f"cannot kill instance {instance!r} of {service}: its live revision runs instances 0-{count - 1}"
            )
        slot = record["slots"][colour]
        process = instance_record(slot, instance)
        if not process or not self._instance_running(service, colour, slot, process):
            raise SandboxError(f"{service} {colour} ({slot['version']}) instance {instance} is not running")
        pid = int(process["pid"])
        os.kill(pid, signal.SIGKILL)
        killed_at = _now_iso()
        # Return once its wrapper has recorded the exit: only then are all its threads gone and
        # its port closed (the main thread is a zombie a moment before the others, and until the
        # last one exits the kernel still completes connections to that port, which it then resets).
        self._exit_code(_instance_name(service, colour, instance), process, KILL_WAIT)
        return {
            "service": service,
            "colour": colour,
            "version": slot["version"],
            "instance": instance,
            "region": self.settings.region_of(instance),
            "pid": pid,
            "killed_at": killed_at,
        }

    def heal(self) -> list[dict[str, Any]]:
        """Restart, on its own port, every instance of a live revision whose process is gone: the
        supervisor's job, called every ``SUPERVISOR_INTERVAL``. Only live slots that are
        ``running``, and only while the sandbox is up (``down`` stops them on purpose): a
        candidate is never healed, because the release's own sensors judge it and a crash-looping
        one must not be hidden. Each restart is appended to the slot's ``restarts`` (the last
        ``RESTARTS_KEPT``) as ``instance``, ``old_pid``, ``exit_code``, ``pid``, ``restarted_at``
        (ISO 8601, UTC), and returned with ``service``, ``colour`` and ``version`` added."""
        # Cheap and lock-free first (the state file and /proc): the lock only when something died.
        if not self._dead_live_instances(self.store.read()):
            return []
        s = self.settings
        healed: list[dict[str, Any]] = []
        with self.store.transaction() as state:
            for service, colour, slot, instance in self._dead_live_instances(state):
                if not processes.port_is_free(s.host, s.port_for(service, colour, instance)):
                    continue  # another program took the port: a new process could only fail to bind
                old = instance_record(slot, instance)
                old_pid = old.get("pid") if old else None
                name = _instance_name(service, colour, instance)
                exit_code = self._exit_code(name, old, HEAL_EXIT_CODE_WAIT) if old else None
                new = self._restart_instance(service, colour, slot, instance)
                entry = {
                    "instance": instance,
                    "old_pid": old_pid,
                    "exit_code": exit_code,
                    "pid": new["pid"],
                    "restarted_at": _now_iso(),
                }
                slot["restarts"] = [*(slot.get("restarts") or []), entry][-RESTARTS_KEPT:]
                healed.append({"service": service, "colour": colour, "version": slot["version"], **entry})
            if healed:  # the ports are the same, unless a replica the record lacked was added
                write_routes(self.settings, state)
                write_scrape_targets(self.settings, state)
        return healed

    # -- regions: the front end serves one, the others stand by ------------------------------
    def regions(self) -> dict[str, Any]:
        """``names`` (the settings' order), ``active`` (where the gateway sends requests) and ``down``."""
        return self._regions_view(self.store.read())

    def _regions_view(self, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "names": list(self.settings.regions),
            "active": active_region(state, self.settings),
            "down": [r for r in state["regions"]["down"] if r in self.settings.regions],
        }

    def region_down(self, region: str) -> dict[str, Any]:
        """A region lost, for real: every process of the services there SIGKILLed, and nothing of
        it started again (not by the supervisor, ``up`` nor a switch) until :meth:`region_up`. The
        front end is not told: requests routed there fail until :meth:`fail_over` moves it.
        Idempotent. Returns ``region``, ``down_at`` (ISO 8601, UTC) and what was ``killed``."""
        s = self.settings
        in_region = s.instances_in(region)
        killed: list[tuple[str, str, int, dict[str, Any]]] = []
        with self.store.transaction() as state:
            if region not in state["regions"]["down"]:
                state["regions"]["down"].append(region)
            down_at = _now_iso()
            for service, record in state["services"].items():
                for colour, slot in record["slots"].items():
                    for i, process in instance_records(slot):
                        if i in in_region and self._instance_running(service, colour, slot, process):
                            os.kill(int(process["pid"]), signal.SIGKILL)
                            killed.append((service, colour, i, process))
            for service, colour, i, process in killed:  # gone, ports closed (see kill_instance)
                self._exit_code(_instance_name(service, colour, i), process, KILL_WAIT)
        return {
            "region": region,
            "down_at": down_at,
            "killed": [{"service": sv, "colour": c, "instance": i, "pid": p["pid"]} for sv, c, i, p in killed],
        }

    def region_up(self, region: str) -> dict[str, Any]:
        """The region back: what it should run (every live revision's instances there, an idle
        revision's instance 0 if it is there) started again, not waited for. It stands by: the front
        end stays where it is. Idempotent. Returns ``region`` and what was ``started``."""
        s = self.settings
        in_region = s.instances_in(region)
        started: list[dict[str, Any]] = []
        with self.store.transaction() as state:
            state["regions"]["down"] = [r for r in state["regions"]["down"] if r != region]
            down = state["regions"]["down"]
            for service, record in state["services"].items():
                for colour, slot in record["slots"].items():
                    if slot.get("state") != "running":
                        continue
                    dead = self._dead_instances(service, colour, slot, record["live"] == colour, down)
                    for i in (i for i in dead if i in in_region):
                        process = self._restart_instance(service, colour, slot, i)
                        started.append({"service": service, "colour": colour, "instance": i, "pid": process["pid"]})
            if started:
                write_routes(s, state)
                write_scrape_targets(s, state)
        return {"region": region, "started": started}

    def fail_over(self, region: str) -> dict[str, Any]:
        """Point the front end at ``region``, in one routing change: refused while it is down or
        while a live revision has no instance there accepting connections (whether they answer
        healthy is the caller's check). Idempotent. Returns ``active``, ``previous``, ``at``."""
        s = self.settings
        with self.store.transaction() as state:
            if region in state["regions"]["down"]:
                raise SandboxError(f"cannot fail over to {region}: it is down")
            self._wait_region_listening(state, region)
            previous = active_region(state, s)
            state["regions"]["active"] = region
            write_routes(s, state)
        return {"active": region, "previous": previous, "at": _now_iso()}

    # -- notifications (the slack and email stand-ins; see notifications.py) ----------------
    def notifications(self, channel: str | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
        """What the notification stand-ins received, accepted or not, oldest first: each record
        (``received_at``, ``status``, ``answer``, ``body``) plus ``channel`` (``slack`` | ``email``)."""
        return notifications.received(self.settings, channel, since)

    def fail_notifications(self, channel: str, status: int = 500, count: int | None = None) -> dict[str, Any]:
        """The channel's next ``count`` valid notifications (None: until cleared) get ``status``."""
        return notifications.fail(self.settings, channel, status, count)

    def clear_notification_faults(self, channel: str | None = None) -> list[str]:
        """Clear the fault of ``channel`` (None: both); the channels that had one."""
        return notifications.clear_faults(self.settings, channel)

    # -- internals -------------------------------------------------------------------------
    def _stale_components(self, state: dict[str, Any]) -> list[components.Component]:
        """Under the state lock: the enabled stand-ins not running where the settings say; a recorded
        one on another port is stopped first."""
        s = self.settings
        stale = []
        for component in components.enabled(s):
            port = s.component_port(component.name)
            record = state["components"].get(component.name)
            if record and record.get("port") == port and self._component_running(component, record):
                continue
            if record:
                processes.stop(self._recorded_pids(record, component.marker(s, int(record["port"]))))
            if component.check_installed is not None:
                component.check_installed(s)
            stale.append(component)
        return stale

    def _dead_live_instances(self, state: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], int]]:
        """(service, colour, slot, instance) of each instance heal() restarts; none while down."""
        if not state["gateway"]:
            return []
        dead = []
        for service, record in state["services"].items():
            colour = record["live"]
            slot = record["slots"].get(colour) if colour else None
            if slot and slot.get("state") == "running":
                down = state["regions"]["down"]
                dead += [(service, colour, slot, i) for i in self._dead_instances(service, colour, slot, True, down)]
        return dead

    def _dead_instances(
        self, service: str, colour: str, slot: dict[str, Any], live: bool, down: list[str]
    ) -> list[int]:
        """The instances the slot should run but does not: all of a live one's, an idle one's 0;
        none in a region that is ``down``."""
        s = self.settings
        wanted = [i for i in range(s.total_instances if live else 1) if s.region_of(i) not in down]
        return [
            i
            for i in wanted
            if not (process := instance_record(slot, i)) or not self._instance_running(service, colour, slot, process)
        ]

    def _tidy_replicas(self, service: str, colour: str, slot: dict[str, Any], live: bool) -> None:
        """Under the state lock: forget the replicas the slot no longer needs, stopping them: those
        beyond ``settings.total_instances`` (it was lowered) and, when not live, the dead ones (a
        switch starts them again)."""
        keep, drop = [], []
        for i, process in instance_records(slot)[1:]:
            needed = i < self.settings.total_instances and (
                live or self._instance_running(service, colour, slot, process)
            )
            (keep if needed else drop).append(process)
        if drop:
            processes.stop(
                pid
                for process in drop
                for pid in self._recorded_pids(process, self._instance_marker(service, colour, slot, process))
            )
            slot["replicas"] = keep

    def _start_replicas(self, service: str, colour: str, slot: dict[str, Any], down: list[str]) -> list[int]:
        """Under the state lock: start the replicas of a slot going (or staying) live that do not
        run, except in a region that is down; refuses (PortInUseError) before starting any when
        another program holds a port."""
        self._tidy_replicas(service, colour, slot, live=True)
        missing = [i for i in self._dead_instances(service, colour, slot, True, down) if i > 0]
        self._require_free(
            [
                (self.settings.port_for(service, colour, i), _instance_label(service, colour, i), ENV_PORT_BASE)
                for i in missing
            ]
        )
        for i in missing:
            self._restart_instance(service, colour, slot, i)
        return missing

    def _wait_region_listening(self, state: dict[str, Any], region: str) -> None:
        """Under the state lock, before the front end moves: each live service has a running instance
        in ``region`` that accepts connections (one brought back a moment ago may still be starting)."""
        in_region = self.settings.instances_in(region)
        running: dict[str, list] = {}
        for service, record in state["services"].items():
            colour = record["live"]
            if slot := record["slots"].get(colour) if colour else None:
                running[service] = [
                    (colour, slot, p)
                    for i, p in instance_records(slot)
                    if i in in_region and self._instance_running(service, colour, slot, p)
                ]
        if missing := [service for service, found in running.items() if not found]:
            raise SandboxError(f"cannot fail over to {region}: no instance of {', '.join(missing)} runs there")
        for service, found in running.items():
            if not any(self._listens(service, colour, slot, p) for colour, slot, p in found):
                raise SandboxError(f"cannot fail over to {region}: no instance of {service} there accepts connections")

    def _listens(self, service: str, colour: str, slot: dict[str, Any], process: dict[str, Any]) -> bool:
        """The process accepts connections, waited for while it runs and is starting."""
        return processes.wait_listening(
            self.settings.host,
            int(process["port"]),
            SERVICE_START_TIMEOUT,
            lambda: self._instance_running(service, colour, slot, process),
        )

    def _wait_serving_replicas(
        self, service: str, colour: str, slot: dict[str, Any], spawned: list[int], region: str
    ) -> None:
        """Under the state lock, before routing moves: when the active region does not hold instance 0
        (the candidate the release's sensors judged; after a failover), the gateway would send users to
        replicas only just started, so each of them must listen first, or nothing moves."""
        serving = self.settings.instances_in(region)
        if 0 in serving:
            return  # the gateway falls back on the judged candidate while its replicas start
        s = self.settings
        for i in (i for i in spawned if i in serving):
            if not self._listens(service, colour, slot, instance_record(slot, i)):
                raise SandboxError(
                    f"cannot switch {service} to {colour}: its instance {i} in {region}, the region users are "
                    f"served from, did not start listening within {SERVICE_START_TIMEOUT:g}s; see "
                    f"{s.log_file(_instance_name(service, colour, i))}"
                )

    def _restart_instance(self, service: str, colour: str, slot: dict[str, Any], instance: int) -> dict[str, Any]:
        """Under the state lock: start that instance of the slot's version and record it (instance
        0 in the slot's own fields, a replica in ``replicas``); returns its record."""
        spawned = self._spawn_instance(service, colour, slot["version"], instance)
        if instance == 0:
            slot.update(spawned)
            return slot
        others = [r for i, r in instance_records(slot)[1:] if i != instance]
        slot["replicas"] = sorted([*others, spawned], key=lambda r: r["instance"])
        return spawned

    def _component_running(self, component: components.Component, record: dict[str, Any]) -> bool:
        marker = component.marker(self.settings, int(record["port"]))
        return processes.is_ours(record.get("pid"), marker, record.get("starttime"))

    def _wait_component(self, component: components.Component) -> None:
        s = self.settings
        port = s.component_port(component.name)
        deadline = time.monotonic() + component.start_timeout
        while time.monotonic() < deadline:
            record = self.store.read()["components"].get(component.name)
            if not record or not self._component_running(component, record):
                break
            if component.ready(s, port):
                return
            time.sleep(0.05)
        tail = "\n  ".join(processes.log_tail(s.log_file(component.name), 10))
        raise SandboxError(f"the sandbox {component.name} did not become ready on :{port}; its log ends:\n  {tail}")

    def _prepare_gateway(self) -> None:
        """The gateway's policy (the sandbox environment's ``gateway:``) and its callers' keys."""
        from varai_deploy.config import ConfigError, load_environment
        from varai_deploy.sandbox import credentials, edge
        from varai_deploy.sandbox.gateway import gateway_dir

        try:
            policy = load_environment("sandbox").gateway
        except ConfigError as exc:
            raise SandboxError(f"the sandbox's gateway policy: {exc}") from exc
        edge.prepare(gateway_dir(self.settings.home), policy, lambda m: credentials.api_key(self.settings, m))

    def _gateway_marker(self, port: int) -> Marker:
        s = self.settings
        return Marker(GATEWAY_MODULE, (("--home", str(s.home)), ("--host", s.host), ("--port", str(port))))

    def _instance_marker(self, service: str, colour: str, slot: dict[str, Any], process: dict[str, Any]) -> Marker:
        """An instance's command line: the slot's, with that instance's port."""
        return self._service_marker_for(service, colour, slot["version"], int(process["port"]))

    def _service_marker_for(self, service: str, colour: str, version: str, port: int) -> Marker:
        s = self.settings
        return Marker(
            SERVICE_MODULE,
            (
                ("--service", service),
                ("--version", version),
                ("--colour", colour),
                ("--port", str(port)),
                ("--home", str(s.home)),
                ("--host", s.host),
            ),
        )

    def _prometheus_marker(self, port: int | None) -> Marker:
        return prometheus.marker(self.settings, int(port or 0))

    def _traffic_marker(self, record: dict[str, Any]) -> Marker:
        return self._traffic_marker_for(
            str(record.get("gateway")), float(record.get("rps") or 0), float(record.get("max_seconds") or 0)
        )

    def _traffic_marker_for(self, gateway: str, rps: float, max_seconds: float) -> Marker:
        return Marker(
            TRAFFIC_MODULE,
            (
                ("--home", str(self.settings.home)),
                ("--gateway", gateway),
                ("--rps", repr(float(rps))),
                ("--max-seconds", repr(float(max_seconds))),
            ),
        )

    def _supervisor_marker(self, record: dict[str, Any]) -> Marker:
        return self._supervisor_marker_for(float(record.get("interval") or SUPERVISOR_INTERVAL))

    def _supervisor_marker_for(self, interval: float) -> Marker:
        return Marker(SUPERVISOR_MODULE, (("--home", str(self.settings.home)), ("--interval", repr(float(interval)))))

    def _supervisor_running(self, record: dict[str, Any]) -> bool:
        return processes.is_ours(record.get("pid"), self._supervisor_marker(record), record.get("starttime"))

    def _ensure_supervisor(self, state: dict[str, Any]) -> None:
        """Under the state lock: the supervisor runs, once (restarted when gone)."""
        record = state["components"].get("supervisor")
        if record and self._supervisor_running(record):
            return
        if record:
            processes.stop(self._recorded_pids(record, self._supervisor_marker(record)))
        marker = self._supervisor_marker_for(SUPERVISOR_INTERVAL)
        state["components"]["supervisor"] = self._spawn_component("supervisor", marker, interval=SUPERVISOR_INTERVAL)

    def _stop_watchers(self, state: dict[str, Any], scan: bool) -> None:
        """Stop the supervisor and the load generator, recorded ones and (``scan``) any other of this home."""
        pids: list[int | None] = []
        generator = state["components"].get("traffic")
        if generator:
            pids += self._recorded_pids(generator, self._traffic_marker(generator))
        supervisor = state["components"].get("supervisor")
        if supervisor:
            pids += self._recorded_pids(supervisor, self._supervisor_marker(supervisor))
        if scan:
            pids += [
                p
                for p in processes.find_ours(self.settings.home)
                if processes.runs_module(p, TRAFFIC_MODULE) or processes.runs_module(p, SUPERVISOR_MODULE)
            ]
        processes.stop(pids)

    def _prometheus_running(self, record: dict[str, Any]) -> bool:
        return processes.is_ours(
            record.get("pid"), self._prometheus_marker(record.get("port")), record.get("starttime")
        )

    def _traffic_running(self, record: dict[str, Any]) -> bool:
        if record.get("stopped") or not record.get("pid"):
            return False
        return processes.is_ours(record["pid"], self._traffic_marker(record), record.get("starttime"))

    def _spawn_component(self, name: str, marker: Marker, **extra: Any) -> dict[str, Any]:
        s = self.settings
        spawned = processes.spawn(marker.argv(), log_file=s.log_file(name), exit_file=s.exit_file(name), cwd=s.home)
        return {
            "pid": spawned.pid,
            "wrapper_pid": spawned.wrapper_pid,
            "starttime": spawned.starttime,
            "started_at": time.time(),
            **extra,
        }

    def _ensure_traffic(self, state: dict[str, Any], rps: float) -> None:
        """Under the state lock: the generator runs at ``rps`` against this gateway, once."""
        s = self.settings
        record = state["components"].get("traffic")
        if (
            record
            and self._traffic_running(record)
            and float(record.get("rps") or 0) == rps
            and record.get("gateway") == s.gateway_url
        ):
            return
        if record:
            processes.stop(self._recorded_pids(record, self._traffic_marker(record)))
        marker = self._traffic_marker_for(s.gateway_url, rps, s.traffic_max_seconds)
        state["components"]["traffic"] = self._spawn_component(
            "traffic", marker, rps=rps, gateway=s.gateway_url, max_seconds=s.traffic_max_seconds
        )

    def _gateway_running(self, gateway: dict[str, Any]) -> bool:
        return processes.is_ours(gateway.get("pid"), self._gateway_marker(gateway["port"]), gateway.get("starttime"))

    def _slot_running(self, service: str, colour: str, slot: dict[str, Any]) -> bool:
        """Instance 0 runs: the slot's own process, the one a candidate is judged by."""
        return self._instance_running(service, colour, slot, slot)

    def _instance_running(self, service: str, colour: str, slot: dict[str, Any], process: dict[str, Any]) -> bool:
        if not process.get("pid") or not process.get("port"):
            return False
        marker = self._instance_marker(service, colour, slot, process)
        return processes.is_ours(process["pid"], marker, process.get("starttime"))

    def _slot_pids(self, service: str, colour: str, slot: dict[str, Any]) -> list[int | None]:
        """Every process of the slot still ours, each instance and its wrapper: what stopping it stops."""
        pids: list[int | None] = []
        for _, process in instance_records(slot):
            if process.get("port"):
                pids += self._recorded_pids(process, self._instance_marker(service, colour, slot, process))
        return pids

    @staticmethod
    def _recorded_pids(record: dict[str, Any], marker: Marker) -> list[int | None]:
        """The recorded process and its wrapper, only if they are still ours (pids get reused)."""
        pids: list[int | None] = []
        if processes.is_ours(record.get("pid"), marker, record.get("starttime")):
            pids.append(record["pid"])
        wrapper = Marker(LAUNCHER_MODULE, marker.flags)
        if processes.is_ours(record.get("wrapper_pid"), wrapper):
            pids.append(record["wrapper_pid"])
        return pids

    def _spawn_service(self, service: str, colour: str, version: str) -> dict[str, Any]:
        """A new slot's fields: instance 0 (a candidate's only process) and its state."""
        return {**self._spawn_instance(service, colour, version, 0), "state": "running"}

    def _spawn_instance(self, service: str, colour: str, version: str, instance: int) -> dict[str, Any]:
        s = self.settings
        port = s.port_for(service, colour, instance)
        name = _instance_name(service, colour, instance)
        marker = self._service_marker_for(service, colour, version, port)
        spawned = processes.spawn(marker.argv(), log_file=s.log_file(name), exit_file=s.exit_file(name), cwd=s.home)
        process = {
            "port": port,
            "pid": spawned.pid,
            "wrapper_pid": spawned.wrapper_pid,
            "starttime": spawned.starttime,
            "started_at": time.time(),
        }
        return process if instance == 0 else {"instance": instance, **process}

    def _stop_slot(self, service: str, colour: str, new_state: str) -> dict[str, Any]:
        check_service(service)
        check_colour(colour)
        verb = "retire" if new_state == "retired" else "discard"
        with self.store.transaction() as state:
            record = state["services"][service]
            if record["live"] == colour:
                raise SandboxError(
                    f"refusing to {verb} {service} {colour}: it is live; switch traffic to the other colour first"
                )
            slot = record["slots"].get(colour)
            if slot is None:
                return {
                    "service": service,
                    "colour": colour,
                    "version": None,
                    "state": None,
                    "running": False,
                }
            processes.stop(self._slot_pids(service, colour, slot))
            slot.pop("replicas", None)
            slot["state"] = new_state
            write_scrape_targets(self.settings, state)
            return {"service": service, **self._view(service, colour, slot)}

    def _view(self, service: str, colour: str, slot: dict[str, Any]) -> dict[str, Any]:
        return {
            "colour": colour,
            "version": slot["version"],
            "image": slot.get("image"),
            "url": self.settings.url_for_port(int(slot["port"])),
            "port": slot["port"],
            "pid": slot.get("pid"),
            "running": self._slot_running(service, colour, slot),
            "state": slot.get("state"),
            "started_at": slot.get("started_at"),
            "instances": [
                {
                    "instance": i,
                    "region": self.settings.region_of(i) if i < self.settings.total_instances else None,
                    "port": process.get("port"),
                    "pid": process.get("pid"),
                    "running": self._instance_running(service, colour, slot, process),
                }
                for i, process in instance_records(slot)
            ],
            "restarts": list(slot.get("restarts") or []),
        }

    def _candidate(self, service: str, colour: str, slot: dict[str, Any]) -> dict[str, Any]:
        return {
            "service": service,
            "version": slot["version"],
            "colour": colour,
            "url": self.settings.url_for_port(int(slot["port"])),
            "pid": slot["pid"],
            "image": slot.get("image"),
        }

    def _exit_code(self, name: str, process: dict[str, Any], wait: float) -> int | None:
        """The wrapper writes the exit code a moment after the process ends; wait that moment."""
        exit_file = self.settings.exit_file(name)
        deadline = time.monotonic() + wait
        while True:
            code = processes.read_exit_code(exit_file, process.get("pid"))
            if code is not None or time.monotonic() >= deadline:
                return code
            if not processes.is_alive(process.get("wrapper_pid")):
                return processes.read_exit_code(exit_file, process.get("pid"))
            time.sleep(0.02)

    def _require_free(self, needs: list[tuple[int, str, str]]) -> None:
        """Raise PortInUseError naming every needed port that something else holds."""
        host = self.settings.host
        taken = [(port, label, env) for port, label, env in needs if not processes.port_is_free(host, port)]
        if not taken:
            return
        lines = []
        for port, label, _env in taken:
            owner = processes.port_owner(port)
            held = f"held by {owner}" if owner else "held by another process"
            lines.append(f"port {host}:{port} (needed by {label}) is already in use, {held}")
        envs = sorted({env for _, _, env in taken})
        hint = (
            "free it (stop that process; if it is another sandbox, run "
            "`python -m varai_deploy.sandbox down` with that sandbox's settings) "
            f"or move this sandbox to other ports with {' / '.join(envs)}"
        )
        raise PortInUseError("; ".join(lines) + f". To fix: {hint}.", host, taken[0][0])

    def _gateway_answers(self, port: int, timeout: float = 1.0) -> bool:
        return processes.http_status(self.settings.host, port, "/_sandbox/routes", timeout=timeout) == 200

    def _wait_prometheus(self) -> None:
        s = self.settings
        deadline = time.monotonic() + PROMETHEUS_START_TIMEOUT
        while time.monotonic() < deadline:
            record = self.store.read()["components"].get("prometheus")
            if not record or not self._prometheus_running(record):
                break
            if prometheus.is_ready(s.host, int(record["port"]), timeout=0.5):
                return
            time.sleep(0.05)
        tail = "\n  ".join(processes.log_tail(s.log_file("prometheus"), 10))
        raise SandboxError(f"the sandbox Prometheus did not become ready; last lines of its log:\n  {tail}")

    def _wait_gateway(self) -> None:
        deadline = time.monotonic() + GATEWAY_START_TIMEOUT
        while time.monotonic() < deadline:
            gateway = self.store.read()["gateway"]
            if not gateway or not self._gateway_running(gateway):
                break
            if self._gateway_answers(gateway["port"], timeout=0.5):
                return
            time.sleep(0.05)
        tail = "\n  ".join(processes.log_tail(self.settings.log_file("gateway"), 10))
        raise SandboxError(f"the sandbox gateway did not come up; last lines of its log:\n  {tail}")
