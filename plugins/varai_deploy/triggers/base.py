"""What every varai trigger shares: it is re-created in the triggerer from its constructor's arguments."""

from __future__ import annotations

from typing import Any

from airflow.triggers.base import BaseTrigger


class ArgumentsTrigger(BaseTrigger):
    """Keeps its keyword arguments as attributes and serializes exactly those (JSON-able) values."""

    def __init__(self, **arguments: Any):
        super().__init__()
        self._arguments = arguments
        for name, value in arguments.items():
            setattr(self, name, value)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", dict(self._arguments)
