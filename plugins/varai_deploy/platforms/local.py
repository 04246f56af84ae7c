"""``LocalPlatform``: the platform protocol on the sandbox's real processes (colours are revisions)."""

from __future__ import annotations

from varai_deploy.platforms.base import PlatformError, Revision, SwitchConflictError
from varai_deploy.sandbox import Sandbox, SandboxError, SandboxSettings
from varai_deploy.sandbox.errors import SwitchConflictError as SandboxConflict


def _revision(service: str, slot: dict, image: str | None = None) -> Revision:
    return Revision(
        service=service,
        version=slot["version"],
        name=slot["colour"],
        url=slot["url"],
        image=image or slot.get("image") or "",
    )


class LocalPlatform:
    def __init__(self, sandbox: Sandbox | None = None):
        # As the running sandbox's `up` saved them: its instances and regions, not only the config's.
        self.sandbox = sandbox or Sandbox(SandboxSettings.current())

    def check_capacity(self, services: list[str]) -> dict:
        """The sandbox is running, and each candidate's ports (every instance it runs once live)
        are free or held by the sandbox itself."""
        from varai_deploy.sandbox import processes

        if not self.sandbox.is_up():
            raise PlatformError(
                "the sandbox is not running: start it with `make sandbox-up` (or `.venv/bin/varai-sandbox up`)"
            )
        status, settings = self.sandbox.status()["services"], self.sandbox.settings
        blocked = []
        for service in services:
            live = status[service]["live"]
            colour = "green" if live and live["colour"] == "blue" else "blue"
            idle = status[service]["idle"]
            ours = idle and idle.get("colour") == colour and idle.get("state") == "running"
            held = {i["port"] for i in idle.get("instances", []) if i.get("running")} if ours else set()
            for instance in range(settings.total_instances):
                port = settings.port_for(service, colour, instance)
                if (instance == 0 and ours) or port in held:
                    continue
                if not processes.port_is_free(settings.host, port):
                    blocked.append(f"{service} {colour} needs {settings.host}:{port}")
        if blocked:
            raise PlatformError(
                "port(s) taken by another program: "
                + "; ".join(blocked)
                + ". Stop it, or move the sandbox with VARAI_SANDBOX_PORT_BASE"
            )
        return {"gateway": settings.gateway_url, "services": services}

    def _slots(self, service: str) -> dict:
        return self.sandbox.status()["services"][service]

    def current_revision(self, service: str) -> Revision | None:
        live = self._slots(service)["live"]
        return _revision(service, live) if live else None

    def deploy_candidate(self, service: str, version: str, image: str) -> Revision:
        try:
            started = self.sandbox.start_candidate(service, version, image=image)
        except SandboxError as exc:
            raise PlatformError(f"{service}: cannot start {version}: {exc}") from exc
        return _revision(service, started, image)

    def diagnose(self, revision: Revision) -> str:
        state = self.sandbox.process_state(revision["service"], revision["name"])
        if state["running"]:
            return f"process {state['pid']} is running but not answering healthy"
        return _ended(state)

    def stopped(self, revision: Revision) -> str | None:
        """The sandbox never restarts a candidate: one whose process ended stays down."""
        state = self.sandbox.process_state(revision["service"], revision["name"])
        return None if state["running"] else _ended(state)

    def switch_traffic(self, service: str, revision: Revision, expected: Revision | None) -> Revision | None:
        expect_live = (expected["name"], expected["version"]) if expected else None
        try:
            result = self.sandbox.switch(
                service, revision["name"], version=revision["version"], expect_live=expect_live
            )
        except SandboxConflict as exc:
            raise SwitchConflictError(f"{service}: traffic not moved to {revision['version']}: {exc}") from exc
        except SandboxError as exc:
            raise PlatformError(f"{service}: cannot switch traffic to {revision['version']}: {exc}") from exc
        previous = result.get("previous")
        return _revision(service, previous) if previous else None

    def retire(self, service: str, revision: Revision) -> None:
        try:
            self.sandbox.retire(service, revision["name"])
        except SandboxError as exc:
            raise PlatformError(f"{service}: cannot retire {revision['version']}: {exc}") from exc

    def discard(self, service: str, revision: Revision) -> None:
        self.sandbox.discard(service, revision["name"])

    def known_revisions(self, service: str) -> list[Revision]:
        slots = self._slots(service)
        return [
            _revision(service, slot)
            for slot in (slots["live"], slots["idle"])
            if slot and slot.get("state") != "failed"
        ]

    def restore(self, service: str, revision: Revision) -> Revision:
        """A sandbox revision is its version: start it again in the idle colour (where it was retired)."""
        return self.deploy_candidate(service, revision["version"], revision.get("image") or "")

    # -- what a disaster-recovery drill breaks and watches ----------------------------------------
    def kill_instance(self, service: str, instance: int | None = None) -> dict:
        """SIGKILL one instance of the live revision (by default one serving users): a service failure, for real."""
        try:
            return self.sandbox.kill_instance(service, instance)
        except SandboxError as exc:
            raise PlatformError(f"{service}: cannot kill an instance: {exc}") from exc

    def instances(self, service: str) -> list[dict]:
        """The live revision's instances: ``instance``, ``region``, ``port``, ``pid``, ``running``, ``url``
        and ``serving`` (in the region the front end sends users to)."""
        status = self.sandbox.status()
        live, active = status["services"][service]["live"], status["regions"]["active"]
        url = self.sandbox.settings.url_for_port
        instances = (live or {}).get("instances", [])
        return [{**i, "url": url(int(i["port"])), "serving": i["region"] == active} for i in instances]

    def restarts(self, service: str) -> list[dict]:
        """What the platform's supervision restarted in the live revision, oldest first."""
        live = self._slots(service)["live"]
        return list((live or {}).get("restarts", []))

    def heal(self) -> list[dict]:
        """Restart every dead instance of a live revision now (what the supervisor does by itself)."""
        return self.sandbox.heal()

    def regions(self) -> dict:
        """``names``, ``active`` (where the front end sends users) and ``down``."""
        return self.sandbox.regions()

    def region_down(self, region: str) -> dict:
        """Every process of the region killed and kept down: a region failure, for real."""
        return self._region_call("take down", self.sandbox.region_down, region)

    def region_up(self, region: str) -> dict:
        """The region's processes started again; it stands by until a failover makes it active."""
        return self._region_call("bring back", self.sandbox.region_up, region)

    def fail_over(self, region: str) -> dict:
        """The front end moved to ``region`` (refused while it is down or lacks a live service)."""
        return self._region_call("fail over to", self.sandbox.fail_over, region)

    @staticmethod
    def _region_call(what: str, call, region: str) -> dict:
        try:
            return call(region)
        except SandboxError as exc:
            raise PlatformError(f"cannot {what} region {region}: {exc}") from exc

    def remove_service(self, service: str) -> None:
        """Every revision of ``service`` stopped and forgotten: it serves nothing until deployed again."""
        self.sandbox.remove(service)


def _ended(state: dict) -> str:
    """How a candidate's process ended: its exit code and the last lines it printed."""
    code = state.get("exit_code")
    tail = " | ".join(line for line in state.get("log_tail", [])[-3:] if line.strip())
    return f"process exited{f' with code {code}' if code is not None else ''}: {tail or 'no output'}"
