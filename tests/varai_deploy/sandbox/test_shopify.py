"""The sandbox's Shopify component: started like ``sandbox up`` does, serving the connection it exports."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from tests.support.shopify_stack import shopify_stack
from varai_deploy.sandbox import credentials, processes
from varai_deploy.sandbox.components import load
from varai_deploy.sandbox.shopify import COMPONENT

APP_QUERY = "query AppVersionsQuery($apiKey: String!) { app(apiKey: $apiKey) { id title } }"


def test_the_component_serves_its_connection_and_keeps_its_secrets_off_the_command_line(tmp_path: Path):
    assert load("shopify") is COMPONENT
    with shopify_stack(tmp_path / "sandbox") as stack:
        conn = stack.connection()
        assert (conn["conn_type"], conn["host"], conn["port"], conn["schema"]) == (
            "http",
            "127.0.0.1",
            stack.settings.component_port("shopify"),
            "http",
        )
        assert conn["password"] == credentials.secret(stack.settings, "shopify_token")
        assert re.fullmatch(r"[0-9a-f]{32}", conn["extra"]["api_key"])

        answer = stack.graphql(APP_QUERY, {"apiKey": stack.api_key})
        assert answer.status_code == 200
        assert answer.json()["data"]["app"]["title"] == "VarAI AI Discovery (sandbox)"

        config = stack.settings.home / "shopify" / "config.json"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        argv = Path(f"/proc/{stack.pids['shopify']}/cmdline").read_bytes().decode()
        assert stack.token not in argv
        assert f"--home\0{stack.settings.home}" in argv
        pid = stack.pids["shopify"]
    assert not processes.is_alive(pid)


def test_prepare_is_idempotent_and_the_app_differs_per_sandbox_home(tmp_path: Path):
    with shopify_stack(tmp_path / "one") as one:
        first = one.connection()
        COMPONENT.prepare(one.settings, one.settings.component_port("shopify"))  # again, while running
        assert one.connection() == first
        assert one.graphql(APP_QUERY, {"apiKey": one.api_key}).json()["data"]["app"] is not None
        one_key = one.api_key
    with shopify_stack(tmp_path / "two") as two:
        # A connection left over from another sandbox finds no app here, and its token is refused.
        assert two.graphql(APP_QUERY, {"apiKey": one_key}).json() == {"data": {"app": None}}
        stale = {
            "Authorization": f"Bearer {first['password']}",
            "X-Shopify-Access-Token": f"Bearer {first['password']}",
        }
        assert two.graphql(APP_QUERY, {"apiKey": two.api_key}, **stale).status_code == 401
