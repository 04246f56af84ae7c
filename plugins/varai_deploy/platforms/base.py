"""The seam between what a release does and where it runs.

A release only ever talks to a :class:`Platform`: the sandbox (``LocalPlatform``) and Google
Cloud Run (``CloudRunPlatform``) both satisfy it, so the same DAG drives every environment.
Revisions travel between tasks through XCom, hence plain JSON-able dicts.
"""

from __future__ import annotations

from typing import Protocol, TypedDict


class Revision(TypedDict, total=False):
    service: str
    version: str
    #: Platform-specific name of the revision (sandbox: the colour, Cloud Run: the revision name).
    name: str
    #: The revision's own URL, reachable without going through the gateway (health checks).
    url: str
    #: Whom a probe of ``url`` must present an ID token for, where the service may be private (Cloud Run:
    #: the service's URL); absent where nothing checks identity (the sandbox's processes).
    audience: str
    image: str
    #: What the registry resolved ``image`` to when the revision was made (Cloud Run's image digest), as
    #: ``deploy_candidate`` reports it; absent where nobody can tell (the sandbox runs processes, not images).
    digest: str
    #: A candidate's: the revision that served when it was deployed (None: nothing did). Its switch is refused
    #: if another one serves by then (traffic moved by hand meanwhile, say): the release does not undo it.
    replaces: str | None


class PlatformError(RuntimeError):
    """The platform refused or failed an operation; the message is meant for the operator."""


class SwitchConflictError(PlatformError):
    """A checked switch found the service changed since it was looked at: traffic did not move."""


class Platform(Protocol):
    def check_capacity(self, services: list[str]) -> dict:
        """Before anything changes: can candidates of ``services`` start now? Raises
        :class:`PlatformError` saying what to fix; returns what it checked (for the task's XCom)."""

    def current_revision(self, service: str) -> Revision | None:
        """The revision serving all of the service's traffic, or None before its first release."""

    def deploy_candidate(self, service: str, version: str, image: str) -> Revision:
        """Start ``version`` beside the live revision, with no traffic. Idempotent."""

    def diagnose(self, revision: Revision) -> str:
        """One line on why a candidate is not healthy (for failure messages)."""

    def stopped(self, revision: Revision) -> str | None:
        """Why a candidate can no longer become healthy (it ended, or the platform failed it), or None
        while it still may: a health wait ends on it at once instead of at its deadline."""

    def switch_traffic(self, service: str, revision: Revision, expected: Revision | None) -> Revision | None:
        """Move all traffic to ``revision`` atomically, only if ``expected`` (None: nothing) still
        serves and ``revision`` is still what was health-checked; otherwise raise
        :class:`SwitchConflictError` and move nothing. Returns the revision that served before."""

    def retire(self, service: str, revision: Revision) -> None:
        """Stop a revision that no longer serves traffic, keeping what a rollback needs. Idempotent."""

    def discard(self, service: str, revision: Revision) -> None:
        """Stop a candidate that failed its checks; it never served traffic."""

    def known_revisions(self, service: str) -> list[Revision]:
        """Revisions a rollback may return to (not failed ones), most recent first, live included."""

    def restore(self, service: str, revision: Revision) -> Revision:
        """Make a known revision ready for traffic again (start a retired one), with no traffic. Idempotent."""
