"""What every release step shares: its environment's config and platform, resolved at run time."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from varai_deploy.config import EnvironmentConfig
    from varai_deploy.ledger import Ledger
    from varai_deploy.platforms import Platform


class EnvironmentOperator(BaseOperator):
    """An operator bound to one environment (usually templated from ``params.environment``)."""

    template_fields: tuple[str, ...] = ("environment",)

    def __init__(self, *, environment: str = "{{ params.environment }}", **kwargs):
        super().__init__(**kwargs)
        self.environment = environment

    @cached_property
    def env_config(self) -> EnvironmentConfig:
        from varai_deploy.config import load_environment

        return load_environment(self.environment)

    @cached_property
    def platform(self) -> Platform:
        from varai_deploy.platforms import get_platform

        return get_platform(self.env_config)

    @cached_property
    def ledger(self) -> Ledger:
        from varai_deploy.ledger import ledger_for

        return ledger_for(self.env_config)
