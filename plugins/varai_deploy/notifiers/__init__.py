"""Telling people: one event model, rendered for Slack and the email endpoint, routed by severity."""

from __future__ import annotations

from varai_deploy.notifiers.delivery import DELIVERED, notify
from varai_deploy.notifiers.events import CRITICAL, INFO, KINDS, WARNING, Event

__all__ = ["CRITICAL", "DELIVERED", "INFO", "KINDS", "WARNING", "Event", "notify"]
