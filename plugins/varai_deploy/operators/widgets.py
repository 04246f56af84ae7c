"""Phase 4 of the guide: build the storefront widget once, publish it per marketplace, check it as merchants get it.

The build runs once and hands its manifest (every file's sha256, the CDN script's SRI) to one
publish and one verify task per marketplace. Each of those rebuilds the same bytes locally (the
build is deterministic, so a Celery worker on another machine needs no shared disk) and refuses to
go on if they differ from the manifest. Conflicts and refused credentials fail at once; anything
else is retried. A channel's error is kept in XCom so the summary can say which channels are live.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from varai_deploy.operators.base import EnvironmentOperator
from varai_deploy.operators.rollback import RollbackOnFailureOperator

CDN_POLL_INTERVAL = 1.0
#: Marks the lines of the summary that ``release_cli`` and ``make demo`` print.
SUMMARY_PREFIX = "VARAI-WIDGET"


PHASE_4_REASON = "Phase 4: the widget's search failed on every storefront: "


class BuildWidgetsOperator(EnvironmentOperator):
    """Builds every channel's artifact for the release and returns the manifest; the ledger keeps its
    digest (``widgets_built``), which an environment promoted from this one must build again."""

    template_fields = (*EnvironmentOperator.template_fields, "version")

    def __init__(self, *, version: str = "{{ params.version }}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version = version

    def execute(self, context: Any) -> dict[str, Any]:
        from varai_deploy.ledger import WIDGETS_BUILT, Actor
        from varai_deploy.widgets import build_release

        with tempfile.TemporaryDirectory(prefix="varai-widgets-") as tmp:
            manifest = build_release(self.version, Path(tmp) / "build")
        self.ledger.record(
            Actor.from_context(context), WIDGETS_BUILT, None, manifest.version, {"manifest": manifest.digest()}
        )
        self.log.info(
            "Widget %s: sha256 %s, %d bytes, SRI %s; %d artifacts for %s",
            manifest.version,
            manifest.widget_sha256,
            manifest.widget_size,
            manifest.widget_sri,
            len(manifest.artifacts),
            ", ".join(manifest.channels),
        )
        return manifest.to_dict()


class ChannelOperator(EnvironmentOperator):
    """One marketplace's step, run with a fresh build that matches the release manifest."""

    template_fields = ("environment", "channel", "manifest")

    def __init__(self, *, channel: str, manifest: Any, **kwargs: Any) -> None:
        kwargs.setdefault("map_index_template", "{{ task.channel }}")
        super().__init__(**kwargs)
        self.channel = channel
        self.manifest = manifest

    @contextlib.contextmanager
    def channel_context(self) -> Iterator[Any]:
        from varai_deploy.widgets import Manifest, build_release
        from varai_deploy.widgets.channels import ROLES
        from varai_deploy.widgets.publishing import ChannelContext

        expected = Manifest.from_dict(self.manifest)
        with tempfile.TemporaryDirectory(prefix=f"varai-{self.channel}-") as tmp:
            build_dir = Path(tmp) / "build"
            rebuilt = build_release(expected.version, build_dir)
            if rebuilt.to_dict() != expected.to_dict():
                raise RuntimeError(
                    f"{self.channel}: the widget built here differs from widgets.build's manifest "
                    f"(sha256 {rebuilt.widget_sha256} vs {expected.widget_sha256}); the sources under "
                    "include/widgets changed during the run: clear widgets.build to publish what is there now"
                )
            scratch = Path(tmp) / "scratch"
            scratch.mkdir()
            connections = {role: self.env_config.connections[role] for role in ROLES[self.channel]}
            yield ChannelContext(expected.version, expected, build_dir, connections, scratch)

    def run_channel_step(self, context: Any, step: str) -> Any:
        """Runs ``step`` of the channel's module; a conflict or refused credentials fail without retries."""
        from airflow.sdk.exceptions import AirflowFailException

        from varai_deploy.widgets.channels import module
        from varai_deploy.widgets.publishing import PublishAuthError, PublishConflictError

        try:
            with self.channel_context() as ctx:
                return getattr(module(self.channel), step)(ctx)
        except (PublishConflictError, PublishAuthError) as exc:
            context["ti"].xcom_push(key="error", value=str(exc))
            raise AirflowFailException(str(exc)) from exc
        except Exception as exc:
            context["ti"].xcom_push(key="error", value=f"{type(exc).__name__}: {exc}")
            raise


class PublishWidgetOperator(ChannelOperator):
    """Publishes one marketplace's artifact; already published with the same bytes is a quick success."""

    def execute(self, context: Any) -> list[dict[str, Any]]:
        publications = self.run_channel_step(context, "publish")
        for pub in publications:
            self.log.info("%s -> %s: %s %s %s", pub.channel, pub.destination, pub.outcome, pub.location, pub.detail)
        return [pub.to_dict() for pub in publications]


class VerifyWidgetOperator(ChannelOperator):
    """Checks the channel as a merchant gets it: CDN URLs in a deferred trigger, then the channel's own checks."""

    template_fields = (*ChannelOperator.template_fields, "publications")

    def __init__(self, *, publications: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.publications = publications

    def execute(self, context: Any) -> dict[str, Any]:
        from varai_deploy.hooks.cdn import expected_cache_control
        from varai_deploy.triggers.cdn import CdnHashTrigger
        from varai_deploy.widgets import Manifest

        urls = [p["location"] for p in self.publications if p["destination"] == "cdn" and p["outcome"] != "skipped"]
        if not urls:
            return self.verified(context, None)
        self.defer(
            trigger=CdnHashTrigger(
                urls=urls,
                sha256=Manifest.from_dict(self.manifest).widget_sha256,
                expect_cache_control={url: expected_cache_control(url) for url in urls},
                poll_interval=CDN_POLL_INTERVAL,
                timeout=self.env_config.cdn_check_timeout_seconds,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException

        if event.get("status") != "success":
            message = f"{self.channel}: CDN check failed: {event.get('message')}"
            context["ti"].xcom_push(key="error", value=message)
            raise AirflowException(message)
        return self.verified(context, event)

    def verified(self, context: Any, cdn_event: dict[str, Any] | None) -> dict[str, Any]:
        checks = [f"CDN serves the release's bytes at {url}" for url in (cdn_event or {}).get("urls", {})]
        checks += self.run_channel_step(context, "verify")
        for check in checks:
            self.log.info("%s verified: %s", self.channel, check)
        return {"channel": self.channel, "checks": checks}


class StorefrontCheckOperator(ChannelOperator):
    """Phase 4: storefront pages with the widget as the channel delivers it, in headless Chromium: load time
    p95 against the guide's 3 s, and a shopper's search answered by the release (``widgets.storefront``)."""

    template_fields = (*ChannelOperator.template_fields, "publications", "services")

    def __init__(self, *, publications: Any, services: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.publications = publications
        self.services = services

    def execute(self, context: Any) -> dict[str, Any]:
        """``{"pages": {delivery: figures}}``: always a value, so the summary takes a storefront task that left
        none for one that did not finish."""
        from airflow.sdk.exceptions import AirflowFailException

        from varai_deploy.widgets import storefront, storefront_pages

        try:
            with self.channel_context() as ctx:
                found = storefront_pages.deliveries(self.channel, ctx, self.publications)
                pages = storefront.check(self.env_config, ctx.version, found, list(self.services))
        except storefront.StorefrontSearchError as exc:
            # Recorded before failing: whether the backend goes back is decided from the ledger.
            self._record_search(context, "failed", str(exc))
            context["ti"].xcom_push(key="error", value=f"storefront: {exc}")
            raise AirflowFailException(str(exc)) from exc
        except Exception as exc:
            context["ti"].xcom_push(key="error", value=f"storefront: {exc}")
            raise
        searched = [d for d, row in pages.items() if not str(row["search"]).startswith("skipped")]
        if searched:
            self._record_search(context, "passed", ", ".join(searched))
        for delivery, row in pages.items():
            self.log.info(
                "%s %s: load p95 %.2f s over %d visits; search: %s",
                self.channel,
                delivery,
                row["load_p95_seconds"],
                row["loads"],
                row["search"],
            )
        return {"pages": pages}

    def _record_search(self, context: Any, outcome: str, detail: str) -> None:
        from varai_deploy.ledger import STOREFRONT_SEARCH, Actor

        self.ledger.record(
            Actor.from_context(context),
            STOREFRONT_SEARCH,
            None,
            context["params"]["version"],
            {"channel": self.channel, "outcome": outcome, "detail": detail},
        )


class StorefrontRollbackOperator(RollbackOnFailureOperator):
    """Phase 4's verdict on the backend, and its undoing, in one task (it sits on every release's way to
    post_deploy). When a shopper's search failed on every storefront that ran one, the services this run
    put live are marked failed with what the browsers saw, then put back as after a failed analysis. A search
    failing on some storefronts only is those channels' own failure (the summary says so); no search at all
    judges nothing. Read from the ledger: a storefront task that crashed counts by what it recorded, a retried
    one by what it recorded last, and a retry of this task finds what an earlier try judged by its reason."""

    def __init__(self, *, services: Any, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(services=services, **kwargs)

    def execute(self, context: Any) -> None:
        from airflow.sdk.exceptions import AirflowSkipException

        judged = self.judge(context)
        if not judged:
            raise AirflowSkipException("no storefront's search failed for the backend: it stays")
        self.services = judged
        super().execute(context)

    def judge(self, context: Any) -> list[str]:
        """The services to roll back, marked failed in the ledger (or by an earlier try), or none."""
        from varai_deploy.ledger import FAILED, PASSED, ROLLED_BACK, STOREFRONT_SEARCH, Actor
        from varai_deploy.operators.analysis import as_list

        actor = Actor.from_context(context)
        entries = self.ledger.run_audit(actor.run_id, (STOREFRONT_SEARCH,))
        latest = {e["detail"]["channel"]: e["detail"] for e in entries}
        failed = sorted(c for c, d in latest.items() if d["outcome"] == "failed")
        if not failed or len(failed) < len(latest):
            passed = sorted(set(latest) - set(failed))
            self.log.info("The search worked on %s; the backend stays", ", ".join(passed) or "no storefront")
            return []
        reason = PHASE_4_REASON + "; ".join(f"{c}: {latest[c]['detail']}" for c in failed)
        judged = []
        for service in as_list(self.services):
            version = self._version(service)
            record = self.ledger.revision(service, version)
            if not record or record.run_id != actor.run_id:
                continue  # not put live by this run
            live = self.platform.current_revision(service)
            if live and live["version"] == version and record.verdict == PASSED:
                self.ledger.record_verdict(actor, service, version, FAILED, reason)
                judged.append(service)
            elif record.verdict in (FAILED, ROLLED_BACK) and (record.reason or "").startswith(PHASE_4_REASON):
                judged.append(service)  # judged by an earlier try of this task
        self.log.warning("%s: %s goes back", reason, ", ".join(judged) or "no service of this run")
        return judged


class WidgetSummaryOperator(BaseOperator):
    """Which marketplaces are live and where; fails the run when any channel failed (after all of them ran)."""

    template_fields = ("channels",)

    def __init__(self, *, channels: Any, group_id: str, gate_task_id: str, build_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.channels = channels
        self.group_id = group_id
        self.gate_task_id = gate_task_id
        self.build_task_id = build_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException, AirflowSkipException

        ti = context["ti"]
        if not ti.xcom_pull(task_ids=self.gate_task_id):
            raise AirflowSkipException("the backend release did not pass: no widget was published")
        if ti.xcom_pull(task_ids=self.build_task_id) is None:
            raise AirflowException(f"{self.build_task_id} failed: no widget was published (see its log)")
        channels = list(self.channels or [])
        summary: dict[str, Any] = {}
        for index, channel in enumerate(channels):
            published = ti.xcom_pull(task_ids=f"{self.group_id}.publish", map_indexes=index) or []
            verified = ti.xcom_pull(task_ids=f"{self.group_id}.verify", map_indexes=index)
            shop = ti.xcom_pull(task_ids=f"{self.group_id}.storefront", map_indexes=index)
            errors = [
                ti.xcom_pull(task_ids=f"{self.group_id}.{step}", map_indexes=index, key="error")
                for step in ("storefront", "verify", "publish")
            ]
            error = next((e for e in errors if e), None)
            if error is None and verified is not None and shop is None:
                error = "storefront: did not complete (see its log)"  # a crash before it could say why
            live = verified is not None and shop is not None and not errors[0]
            summary[channel] = {
                "live": live,
                "publications": published,
                "storefront": shop,
                "error": None if live else error,
            }
        lines = []
        for channel, row in summary.items():
            if row["live"]:
                for pub in row["publications"]:
                    detail = f"  ({pub['detail']})" if pub.get("detail") else ""
                    lines.append(
                        f"{SUMMARY_PREFIX} {channel} {pub['destination']} {pub['outcome']} {pub['location']}{detail}"
                    )
                for delivery, page in row["storefront"]["pages"].items():
                    lines.append(
                        f"{SUMMARY_PREFIX} {channel} storefront checked {delivery}: load p95 "
                        f"{page['load_p95_seconds']:.2f} s over {page['loads']} visits; search {page['search']}"
                    )
            else:
                lines.append(f"{SUMMARY_PREFIX} {channel} FAILED {row['error'] or 'did not complete'}")
        print("\n".join(lines) if lines else f"{SUMMARY_PREFIX} none: no marketplace was selected")
        failed = [c for c, row in summary.items() if not row["live"]]
        if failed:
            live = [c for c, row in summary.items() if row["live"]]
            raise AirflowException(
                f"widget publication failed for {', '.join(failed)} (live: {', '.join(live) or 'none'}); "
                f"fix the cause and clear the failed {self.group_id} task of that channel to retry only it"
            )
        return summary
