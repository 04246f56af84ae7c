"""``CloudRunPlatform``: the platform protocol on Google Cloud Run (Admin API v2), blue-green by traffic tags.

Terraform creates each service (include/terraform/gcp, which ignores its template and traffic from then on);
a release only ever adds revisions and moves traffic:

- a candidate is a new revision named ``<service>-<version>`` (dots as hyphens) with the release's image, and
  the service's traffic written out in full: the live revision at 100 %, the candidate at 0 % under its tag
  (the version, so each version has a stable URL of its own). Written out, never merged: a split pinned by an
  earlier change, or a ``LATEST`` allocation that would hand the new revision every request, cannot carry over;
- the switch moves 100 % to the candidate only if the revision it replaces still serves and the service's etag is
  the one read with it, so a concurrent change refuses the switch and nothing moves; the previous revision keeps
  its tag, a URL a rollback can check before moving traffic back;
- retiring drops a revision's tag and deletes revisions older than the newest ``keep_revisions``, never one
  that serves or is tagged; a discarded candidate (it never served) is deleted at once.

Every mutation is a long-running operation waited for here (Cloud Run answers it once the revision is ready,
within ``operation_timeout`` seconds), so a revision that cannot start fails its deploy with Cloud Run's reason.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from varai_deploy.platforms.base import PlatformError, Revision, SwitchConflictError

if TYPE_CHECKING:
    from varai_deploy.hooks.cloud_run import EndpointCloudRunHook
    from varai_deploy.ledger import Ledger

#: A Cloud Run revision or tag name: lowercase letters, digits and hyphens, starting with a letter.
_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def slug(version: str) -> str:
    """``v1.4.2`` -> ``v1-4-2``: a version as Cloud Run names allow it."""
    name = re.sub(r"[^a-z0-9-]+", "-", version.lower()).strip("-")
    if not _NAME.fullmatch(name):
        raise PlatformError(f"version {version!r} cannot name a Cloud Run revision or tag")
    return name


def revision_name(service: str, version: str) -> str:
    name = f"{service}-{slug(version)}"
    if len(name) > 63:
        raise PlatformError(f"{service} {version}: revision name {name!r} is longer than Cloud Run's 63 characters")
    return name


def _short(name: str) -> str:
    """The last segment of a resource name (``projects/.../revisions/r`` -> ``r``)."""
    return name.rsplit("/", 1)[-1]


def _ready(revision) -> bool:
    return any(c.type_ == "Ready" and c.state.name == "CONDITION_SUCCEEDED" for c in revision.conditions)


class CloudRunPlatform:
    def __init__(
        self,
        hook: EndpointCloudRunHook,
        ledger: Ledger | None = None,
        keep_revisions: int = 3,
        operation_timeout: float = 600,
        service_name: str = "{service}",
    ) -> None:
        self.hook = hook
        #: The Cloud Run service of a project service: staging and production share a Google project, so
        #: Terraform names them ``<service>-<environment>`` (include/terraform/gcp).
        self.service_name = service_name
        self.ledger = ledger
        self.keep_revisions = keep_revisions
        self.operation_timeout = operation_timeout

    # -- reading ------------------------------------------------------------------------------------
    def _service_name(self, service: str) -> str:
        try:
            parent = self.hook.parent()
        except ValueError as exc:  # the connection does not say where the services live
            raise PlatformError(str(exc)) from exc
        return f"{parent}/services/{self.service_name.format(service=service)}"

    def _get(self, service: str):
        from google.api_core.exceptions import NotFound

        try:
            return self.hook.services.get_service(name=self._service_name(service))
        except NotFound as exc:
            raise PlatformError(
                f"{service}: no Cloud Run service {self._service_name(service)}; Terraform creates it "
                "(include/terraform/gcp) before the first release"
            ) from exc

    def _get_revision(self, service: str, name: str):
        from google.api_core.exceptions import NotFound

        try:
            return self.hook.revisions.get_revision(name=f"{self._service_name(service)}/revisions/{name}")
        except NotFound:
            return None

    @staticmethod
    def _serving(svc) -> str | None:
        """The revision with all the service's traffic (None: none, or a split), from what Cloud Run applied."""
        from google.cloud.run_v2 import TrafficTargetAllocationType

        for status in svc.traffic_statuses:
            if status.percent == 100:
                if status.type_ == TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST:
                    return _short(svc.latest_ready_revision) or None
                return status.revision or None
        return None

    @staticmethod
    def _tag_url(svc, revision: str) -> str | None:
        return next((s.uri for s in svc.traffic_statuses if s.revision == revision and s.tag and s.uri), None)

    def _revision(self, service: str, svc, name: str, url: str | None = None, found: Any = None) -> Revision:
        """As the platform protocol has it; ``found``: the revision as already read (else it is read)."""
        revision = found or self._get_revision(service, name)
        image = revision.containers[0].image if revision and revision.containers else ""
        return Revision(
            service=service,
            version=image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else "",
            name=name,
            url=url or self._tag_url(svc, name) or svc.uri,
            audience=svc.uri,
            image=image,
        )

    def check_capacity(self, services: list[str]) -> dict:
        """Each service exists and is not in the middle of another change."""
        checked, problems = {}, []
        for service in services:
            svc = self._get(service)
            if svc.reconciling:
                problems.append(f"{service} is still applying another change (reconciling)")
            checked[service] = svc.uri
        if problems:
            raise PlatformError("; ".join(problems) + ": wait for it to finish, then try again")
        return {"parent": self._service_name(services[0]).rsplit("/services/", 1)[0], "services": checked}

    def current_revision(self, service: str) -> Revision | None:
        svc = self._get(service)
        serving = self._serving(svc)
        return self._revision(service, svc, serving, svc.uri) if serving else None

    # -- changing -----------------------------------------------------------------------------------
    def _update(self, svc, mask: list[str], what: str) -> Any:
        """Patch ``mask`` of ``svc`` (its etag as read: a concurrent change is refused) and wait for Cloud Run."""
        from google.api_core.exceptions import Aborted, Conflict, GoogleAPICallError
        from google.cloud.run_v2 import UpdateServiceRequest
        from google.protobuf.field_mask_pb2 import FieldMask

        request = UpdateServiceRequest(service=svc, update_mask=FieldMask(paths=mask))
        try:
            operation = self.hook.services.update_service(request=request)
        except (Aborted, Conflict) as exc:  # a stale etag: 409 ABORTED over REST
            raise SwitchConflictError(f"{what}: the service changed since it was read ({exc.message})") from exc
        try:
            return operation.result(timeout=self.operation_timeout)
        except GoogleAPICallError as exc:
            raise PlatformError(f"{what}: Cloud Run refused it: {exc.message}") from exc

    @staticmethod
    def _traffic(percents: dict[str, int], tags: dict[str, str]) -> list:
        """The whole traffic list: ``percents`` by revision, every tag in ``tags`` kept at 0 % unless given."""
        from google.cloud.run_v2 import TrafficTarget, TrafficTargetAllocationType

        by_revision = TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
        revisions = dict.fromkeys([*percents, *tags])
        return [
            TrafficTarget(type_=by_revision, revision=r, percent=percents.get(r, 0), tag=tags.get(r, ""))
            for r in revisions
        ]

    @staticmethod
    def _tags(svc) -> dict[str, str]:
        return {s.revision: s.tag for s in svc.traffic_statuses if s.tag and s.revision}

    def deploy_candidate(self, service: str, version: str, image: str) -> Revision:
        svc, name, existing, mask = self._candidate_change(service, version, image)
        replaces = self._writes_serving(svc)
        updated = self._update(svc, mask, f"{service}: deploying {version} as {name}")
        return Revision(**self._candidate(service, updated, name, existing), replaces=replaces)

    @staticmethod
    def _writes_serving(svc) -> str | None:
        """The revision a traffic list as written (not yet applied) gives 100 %."""
        return next((t.revision for t in svc.traffic if t.percent == 100 and t.revision), None)

    def start_candidate(self, service: str, version: str, image: str) -> dict[str, str]:
        """``deploy_candidate`` without its wait, for a worker that defers it: the change is sent (or found
        still being applied, by a try that died) and ``{"revision", "service", "replaces"}`` returned;
        :meth:`wait_trigger` waits for the service in the triggerer, :meth:`finish_candidate` reads the result."""
        from google.api_core.exceptions import Aborted, Conflict
        from google.cloud.run_v2 import UpdateServiceRequest
        from google.protobuf.field_mask_pb2 import FieldMask

        svc, full = self._get(service), self._service_name(service)
        if svc.reconciling:
            making = svc.template.revision
            base = revision_name(self.service_name.format(service=service), version)
            if re.fullmatch(re.escape(base) + r"(-r\d+)?", making) and svc.template.containers[0].image == image:
                return {"revision": making, "service": full, "replaces": self._writes_serving(svc)}
            raise SwitchConflictError(f"{service}: Cloud Run is still applying another change ({making}); try again")
        svc, name, _, mask = self._candidate_change(service, version, image)
        request = UpdateServiceRequest(service=svc, update_mask=FieldMask(paths=mask))
        try:
            self.hook.services.update_service(request=request)
        except (Aborted, Conflict) as exc:
            raise SwitchConflictError(f"{service}: deploying {version}: the service changed meanwhile") from exc
        return {"revision": name, "service": full, "replaces": self._writes_serving(svc)}

    def wait_trigger(self, started: dict[str, Any], poll_seconds: float = 2):
        """The trigger that waits for ``started``'s change; its event carries ``started`` back (``carry``)."""
        from varai_deploy.triggers.cloud_run import CloudRunServiceTrigger

        return CloudRunServiceTrigger(self.hook.gcp_conn_id, started["service"], poll_seconds, carry=started)

    def finish_candidate(self, service: str, version: str, name: str, error: str | None = None) -> Revision:
        """The candidate Cloud Run made, once ready; why not otherwise."""
        found = self._get_revision(service, name)
        if found is None or not _ready(found):
            why = self.diagnose({"service": service, "name": name})
            raise PlatformError(f"{service}: deploying {version} as {name}: Cloud Run refused it: {error or why}")
        return self._candidate(service, self._get(service), name, found)

    def _candidate_change(self, service: str, version: str, image: str) -> tuple[Any, str, Any, list[str]]:
        """The service with the candidate's revision (new, or the ready one a retry finds) at 0 % under its
        tag, the live one at 100 %: what to patch, and the field mask."""
        svc = self._get(service)
        name, existing = self._candidate_name(service, version, image)
        serving = self._serving(svc)
        if serving is None and svc.traffic_statuses:
            # A split left by hand: its largest share becomes the live revision, in full.
            serving = max(svc.traffic_statuses, key=lambda s: s.percent).revision or _short(svc.latest_ready_revision)
        # Nothing serving yet (a service without revisions): the candidate takes the traffic nobody has.
        percents = {serving: 100} if serving else {name: 100}
        tags = {**self._tags(svc), name: slug(version)}
        mask = ["traffic"]
        if existing is None:
            svc.template.revision = name
            svc.template.containers[0].image = image
            mask.insert(0, "template")
        svc.traffic = self._traffic(percents, tags)
        return svc, name, existing, mask

    def _candidate(self, service: str, svc, name: str, found: Any) -> Revision:
        candidate = self._revision(service, svc, name, found=found)
        digest = self.hook.image_digest(f"{self._service_name(service)}/revisions/{name}")
        return Revision(**candidate, digest=digest) if digest else candidate

    def _candidate_name(self, service: str, version: str, image: str) -> tuple[str, Any]:
        """The revision of ``version``: one that exists with this image and is ready (a retried deploy), else a
        new name, ``<service>-<version>`` or, when that revision failed (Cloud Run keeps it), ``...-r<n>``.
        A version that exists with another image is refused: what staging tested must be what runs."""
        base = revision_name(self.service_name.format(service=service), version)
        tries = [
            r
            for r in self.hook.revisions.list_revisions(parent=self._service_name(service))
            if re.fullmatch(re.escape(base) + r"(-r\d+)?", _short(r.name))
        ]
        for revision in tries:
            used = revision.containers[0].image if revision.containers else ""
            if used != image:
                raise PlatformError(
                    f"{service}: revision {_short(revision.name)} runs {used}, not {image}: a version is built "
                    "once; release a new version"
                )
            if _ready(revision):
                return _short(revision.name), revision
        return (f"{base}-r{len(tries) + 1}" if tries else base), None

    def diagnose(self, revision: Revision) -> str:
        found = self._get_revision(revision["service"], revision["name"])
        if found is None:
            return f"revision {revision['name']} does not exist"
        failing = self._conditions(found, lambda state: state != "CONDITION_SUCCEEDED")
        return failing or f"revision {revision['name']} is ready but not answering healthy"

    def stopped(self, revision: Revision) -> str | None:
        """Cloud Run restarts a crashing container; only a revision it marked failed is given up on."""
        found = self._get_revision(revision["service"], revision["name"])
        if found is None:
            return f"revision {revision['name']} does not exist"
        return self._conditions(found, lambda state: state == "CONDITION_FAILED") or None

    @staticmethod
    def _conditions(found, which) -> str:
        return "; ".join(
            f"{c.type_}: {c.message or c.reason or c.revision_reason}" for c in found.conditions if which(c.state.name)
        )

    def switch_traffic(self, service: str, revision: Revision, expected: Revision | None) -> Revision | None:
        svc = self._get(service)
        serving = self._serving(svc)
        want = expected["name"] if expected else None
        if serving != want:
            raise SwitchConflictError(
                f"{service}: traffic not moved to {revision['version']}: {serving or 'nothing'} serves, "
                f"not {want or 'nothing'}"
            )
        found = self._get_revision(service, revision["name"])
        if found is None or (revision.get("image") and found.containers[0].image != revision["image"]):
            raise SwitchConflictError(
                f"{service}: traffic not moved: revision {revision['name']} is not the one health-checked"
            )
        tags = self._tags(svc)
        if expected and expected.get("version"):  # its own URL, for a rollback to check before moving back
            tags.setdefault(expected["name"], slug(expected["version"]))
        svc.traffic = self._traffic({revision["name"]: 100}, tags)
        updated = self._update(svc, ["traffic"], f"{service}: switching to {revision['version']}")
        return self._revision(service, updated, expected["name"]) if expected else None

    def retire(self, service: str, revision: Revision) -> None:
        svc = self._get(service)
        if self._serving(svc) == revision["name"]:
            raise PlatformError(f"{service}: refusing to retire {revision['name']}: it serves all traffic")
        self._prune(service, self._retag(service, svc, revision["name"], None))

    def discard(self, service: str, revision: Revision) -> None:
        """Untagged, then deleted with what else is not needed (Cloud Run keeps a service's latest revision)."""
        self._prune(service, self._retag(service, self._get(service), revision["name"], None))

    def _retag(self, service: str, svc, name: str, tag: str | None):
        """``name`` given ``tag`` (None: none), traffic untouched; ``svc`` as Cloud Run has it afterwards."""
        tags = self._tags(svc)
        if tags.get(name) == tag or (tag is None and name not in tags):
            return svc
        if tag is None:
            del tags[name]
        else:
            tags[name] = tag
        serving = self._serving(svc)
        svc.traffic = self._traffic({serving: 100} if serving else {}, tags)
        return self._update(svc, ["traffic"], f"{service}: {'tagging' if tag else 'untagging'} {name}")

    def _prune(self, service: str, svc) -> None:
        """Delete every revision not needed: not serving, not tagged, not the latest Cloud Run created, and
        either not ready (it never could serve) or older than the newest ``keep_revisions`` ready ones."""
        revisions = sorted(
            self.hook.revisions.list_revisions(parent=self._service_name(service)),
            key=lambda r: r.create_time,
            reverse=True,
        )
        needed = {s.revision for s in svc.traffic_statuses if s.revision} | {_short(svc.latest_created_revision)}
        ready = [r for r in revisions if _ready(r)]
        kept = {_short(r.name) for r in ready[: self.keep_revisions]}
        for old in revisions:
            name = _short(old.name)
            if name not in needed and name not in kept:
                self._delete(service, name)

    def _delete(self, service: str, name: str) -> None:
        from google.api_core.exceptions import GoogleAPICallError, NotFound

        try:
            self.hook.revisions.delete_revision(name=f"{self._service_name(service)}/revisions/{name}").result(
                timeout=self.operation_timeout
            )
        except NotFound:
            pass
        except GoogleAPICallError as exc:
            raise PlatformError(f"{service}: cannot delete revision {name}: {exc.message}") from exc

    def known_revisions(self, service: str) -> list[Revision]:
        """Revisions that served traffic and did not fail, per the ledger, most recently served first,
        that Cloud Run still has."""
        from varai_deploy.ledger import FAILED

        if self.ledger is None:
            return []
        svc = self._get(service)
        known = []
        for record in self.ledger.revisions(service):
            if record.served_at is None or record.verdict == FAILED:
                continue
            found = self._get_revision(service, record.name)
            if found is not None:
                known.append(self._revision(service, svc, record.name, found=found))
        return known

    def restore(self, service: str, revision: Revision) -> Revision:
        """A Cloud Run revision is immutable and scales from zero: tag it again (a URL to check) with no traffic."""
        svc = self._get(service)
        if self._get_revision(service, revision["name"]) is None:
            raise PlatformError(f"{service}: revision {revision['name']} was deleted; it cannot be restored")
        if revision["name"] not in self._tags(svc):
            svc = self._retag(service, svc, revision["name"], slug(revision["version"]))
        return self._revision(service, svc, revision["name"])
