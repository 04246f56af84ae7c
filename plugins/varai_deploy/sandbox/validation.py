"""Checks on names that come from users (params, CLI flags) before anything is changed.

The rules are the release's own (``varai_deploy.config``); here they raise ``SandboxError`` so
the sandbox's callers and CLI see one kind of error.
"""

from __future__ import annotations

from varai_deploy import config
from varai_deploy.sandbox.errors import SandboxError

COLOURS: tuple[str, ...] = ("blue", "green")


def check_service(service: str) -> str:
    try:
        return config.check_services([service])[0]
    except config.ConfigError as exc:
        raise SandboxError(str(exc)) from exc


def check_version(version: str) -> str:
    try:
        return config.check_revision_version(version)
    except config.ConfigError as exc:
        raise SandboxError(str(exc)) from exc


def check_colour(colour: str) -> str:
    if colour not in COLOURS:
        raise SandboxError(f"invalid colour {colour!r}; expected 'blue' or 'green'")
    return colour


def other_colour(colour: str) -> str:
    return "green" if colour == "blue" else "blue"
