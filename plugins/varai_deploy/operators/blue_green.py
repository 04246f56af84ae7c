"""Blue-green steps for one service: deploy a candidate, switch traffic, verify, retire the old revision."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from varai_deploy.operators.base import EnvironmentOperator
from varai_deploy.services import SERVICES


class DeployCandidateOperator(EnvironmentOperator):
    """Starts ``version`` of a service beside the live revision with no traffic, pending in the ledger.

    When the version already serves and the ledger has it passed, it returns the live revision
    marked ``noop``: re-running a release is a quick no-op and nothing is touched. When it serves
    but was never judged (a run that died after its switch), it is marked ``serving`` and judged
    again by this run: "already live" is never taken as "released".
    """

    template_fields = ("environment", "service", "version", "infra")

    def __init__(self, *, service: Any, infra: Any, version: str = "{{ params.version }}", **kwargs):
        super().__init__(**kwargs)
        self.service = service
        self.version = version
        self.infra = infra

    def execute(self, context) -> dict:
        from varai_deploy.ledger import PASSED, Actor

        actor = Actor.from_context(context)
        self.ledger.check_holds(actor)
        live = self.platform.current_revision(self.service)
        if live and live["version"] == self.version:
            record = self.ledger.revision(self.service, self.version)
            if record and record.verdict == PASSED:
                self.log.info("%s already serves %s (%s): nothing to do", self.service, self.version, live["name"])
                return {**live, "noop": True}
            self.log.warning(
                "%s serves %s but the ledger has no passed verdict for it (%s): judging it again",
                self.service,
                self.version,
                record.verdict if record else "never recorded",
            )
            self.ledger.record_candidate(actor, live)
            return {**live, "serving": True}
        image = (self.infra.get("images") or {}).get(self.service)
        if not image:
            raise AirflowFailException(f"terraform outputs name no image for {self.service}: is it in the module?")
        start = getattr(self.platform, "start_candidate", None)
        if start is not None:  # a platform whose deploy is an operation to wait for: waited in the triggerer
            started = start(self.service, self.version, image)
            cloud_run = self.env_config.cloud_run
            self.defer(
                trigger=self.platform.wait_trigger(started),
                method_name="candidate_started",
                timeout=timedelta(seconds=cloud_run.operation_timeout_seconds if cloud_run else 600),
            )
        candidate = self.platform.deploy_candidate(self.service, self.version, image)
        # What serves beside it (the platform says, where its deploy rewrites the traffic: a split resolved).
        return self._started(actor, {"replaces": live and live["name"], **candidate})

    def candidate_started(self, context, event: dict) -> dict:
        """After the deferred wait: the revision the change made (the event carries what ``execute`` started),
        or its error."""
        from varai_deploy.ledger import Actor

        actor = Actor.from_context(context)
        self.ledger.check_holds(actor)
        started = event["carry"]
        candidate = self.platform.finish_candidate(self.service, self.version, started["revision"], event.get("error"))
        return self._started(actor, {**candidate, "replaces": started["replaces"]})

    def _started(self, actor, candidate: dict) -> dict:
        self.ledger.record_candidate(actor, candidate)
        if self.env_config.promoted_from:
            self._check_same_image(actor, candidate)
        self.log.info(
            "%s %s started as %s at %s with no traffic (live: %s)",
            self.service,
            self.version,
            candidate["name"],
            candidate["url"],
            candidate["replaces"],
        )
        return dict(candidate)

    def _check_same_image(self, actor, candidate: dict) -> None:
        """The candidate runs the very image that passed ``promoted_from`` (same digest), or it is
        discarded and failed before any traffic can reach it: a tag pushed again since is refused."""
        from varai_deploy.config import load_environment
        from varai_deploy.ledger import FAILED, ledger_for

        source = self.env_config.promoted_from
        passed = ledger_for(load_environment(source)).revision(self.service, self.version)
        want, got = (passed.digest if passed else ""), candidate.get("digest", "")
        if want and got == want:
            self.log.info("%s %s is %s, the image that passed %s", self.service, self.version, got, source)
            return
        reason = (
            f"{self.service} {self.version} resolved to {got or 'no digest'} here, not to {want or 'a digest'} "
            f"that passed {source}: not the same image; discarded before any traffic reached it"
        )
        self.platform.discard(self.service, candidate)
        self.ledger.record_verdict(actor, self.service, self.version, FAILED, reason)
        raise AirflowFailException(reason)


class SwitchTrafficOperator(EnvironmentOperator):
    """Moves all of a service's traffic to the candidate that passed its health streak, checked.

    The switch names the revision it expects to replace, so a concurrent change is refused rather
    than overwritten; the ledger hears of the switch before and after. A retry that finds the
    candidate already serving (the worker died mid-switch) reports the switch instead of failing.
    """

    template_fields = ("environment", "candidate")

    def __init__(self, *, candidate: Any, **kwargs):
        super().__init__(**kwargs)
        self.candidate = candidate

    def _still_healthy(self) -> str | None:
        import requests

        from varai_deploy.probe_identity import ProbeIdentity, probe_conn_id

        url = self.candidate["url"].rstrip("/") + "/health"
        try:
            headers = ProbeIdentity(probe_conn_id(self.env_config)).headers(self.candidate.get("audience"))
        except Exception as exc:  # credentials that cannot vouch for us: not a healthy answer either
            return f"{url}: no ID token ({type(exc).__name__}: {exc})"
        try:
            resp = requests.get(url, headers=headers, timeout=5)
        except requests.RequestException as exc:
            return f"{url}: {type(exc).__name__}"
        return None if resp.ok else f"{url}: HTTP {resp.status_code}"

    def _known(self, service: str, version: str | None) -> dict | None:
        if not version:
            return None
        return next((dict(r) for r in self.platform.known_revisions(service) if r["version"] == version), None)

    def execute(self, context) -> dict:
        from varai_deploy.ledger import Actor
        from varai_deploy.platforms import SwitchConflictError

        actor = Actor.from_context(context)
        self.ledger.check_holds(actor)
        service, version = self.candidate["service"], self.candidate["version"]
        live = self.platform.current_revision(service)
        if live and live["version"] == version and live["name"] == self.candidate["name"]:
            state = self.ledger.service_state(service)
            if state.live_version == version:  # recorded: it replaced the previous version
                previous = self._known(service, state.previous_version)
            else:  # the try that switched died before recording it: it replaced what the ledger had live
                previous = self._known(service, state.live_version)
                replaced = previous or ({"version": state.live_version} if state.live_version else None)
                self.ledger.record_switch(actor, service, live, replaced)
            self.log.warning("%s already serves %s (%s): the switch had happened", service, version, live["name"])
            return self._switched(service, live, previous)
        replaces = self.candidate.get("replaces", live and live["name"])  # (an older XCom may lack it)
        if (live and live["name"]) != replaces:
            raise AirflowFailException(
                f"{service}: traffic not moved to {version}: {live['name'] if live else 'nothing'} serves, not "
                f"{replaces or 'nothing'} as when the candidate was deployed: someone else changed it meanwhile, "
                "and the release leaves that change as it is"
            )
        problem = self._still_healthy()
        if problem:
            # It passed its streak but is not healthy now: traffic must not move.
            raise AirflowFailException(
                f"{service}: candidate {version} stopped answering healthy ({problem}); traffic stays on "
                f"{live['version'] if live else 'nothing (no live revision)'}"
            )
        self.ledger.record(actor, "switch_intent", service, version, {"replacing": live and live["version"]})
        try:
            previous = self.platform.switch_traffic(service, self.candidate, expected=live)
        except SwitchConflictError as exc:
            raise AirflowFailException(str(exc)) from exc
        self.ledger.record_switch(actor, service, self.candidate, previous)
        self.log.info(
            "%s: traffic now on %s (%s); previous %s",
            service,
            version,
            self.candidate["name"],
            previous and f"{previous['version']} ({previous['name']})",
        )
        return self._switched(service, self.candidate, previous)

    @staticmethod
    def _switched(service: str, live: dict, previous: dict | None) -> dict:
        return {
            "service": service,
            "live": dict(live),
            "previous": previous and dict(previous),
            "switched_at": datetime.now(UTC).isoformat(),
        }


class VerifyGatewayOperator(EnvironmentOperator):
    """Asks the public gateway the service's health path N times: every answer must come from ``version``."""

    template_fields = ("environment", "switch")

    def __init__(self, *, switch: Any, **kwargs):
        super().__init__(**kwargs)
        self.switch = switch

    def execute(self, context) -> dict:
        """Returns the switch it verified, so what flows on is only ever a verified switch."""
        from varai_deploy.hooks.gateway import GatewayHook

        service, version = self.switch["service"], self.switch["live"]["version"]
        hook = GatewayHook(self.env_config.gateway_conn_id)
        answers = [hook.probe(SERVICES[service].health_path) for _ in range(self.env_config.release.gateway_checks)]
        wrong = [a for a in answers if not a.ok or a.version != version]
        for answer in answers:
            self.log.info("%s", answer.describe())
        if wrong:
            raise AirflowFailException(
                f"{service}: the gateway at {hook.url} does not serve {version} after the switch: "
                + "; ".join(a.describe() for a in wrong[:3])
            )
        return self.switch


class RetireRevisionOperator(EnvironmentOperator):
    """After the bake time (a deferred wait), stops the revision a switch replaced. The release DAG
    runs it only for switches whose analysis passed; until then the old revision stays warm, so a
    rollback is one atomic switch."""

    template_fields = ("environment", "switch")

    def __init__(self, *, switch: Any, **kwargs):
        super().__init__(**kwargs)
        self.switch = switch

    def execute(self, context) -> str:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        if not self.switch.get("previous"):
            return f"{self.switch['service']}: first release, no previous revision to retire"
        bake_until = datetime.fromisoformat(self.switch["switched_at"]) + timedelta(
            seconds=self.env_config.release.bake_seconds
        )
        if datetime.now(UTC) < bake_until:
            self.log.info("Baking until %s before retiring the previous revision", bake_until.isoformat())
            self.defer(trigger=DateTimeTrigger(moment=bake_until), method_name="execute_complete")
        return self.execute_complete(context)

    def execute_complete(self, context, event: Any = None) -> str:
        from varai_deploy.ledger import Actor

        self.ledger.check_holds(Actor.from_context(context))
        previous = self.switch["previous"]
        started = time.monotonic()
        self.platform.retire(previous["service"], previous)
        message = f"{previous['service']}: retired {previous['version']} ({previous['name']})"
        self.log.info("%s in %.2fs; it can be brought back by a rollback", message, time.monotonic() - started)
        return message
