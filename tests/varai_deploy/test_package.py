"""The project is installed in its venv (``make setup``): its commands run without PYTHONPATH, and the
package the install provides is the very one Airflow's plugins folder (plugins/) holds, imported once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from varai_deploy.config import REPO_ROOT

VENV_BIN = Path(sys.executable).parent
PLUGINS = REPO_ROOT / "plugins"


def run(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """``argv`` from a scratch directory, with no PYTHONPATH and no Airflow settings of the caller."""
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith(("AIRFLOW", "VARAI_"))}
    clean["AIRFLOW_HOME"] = str(tmp_path / "airflow-home")
    return subprocess.run(
        argv, cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["varai-sandbox", "--help"],
        ["python", "-m", "varai_deploy.sandbox", "--help"],
        ["varai-widgets", "--help"],
        ["python", "-m", "varai_deploy.widgets", "--help"],
    ],
    ids=" ".join,
)
def test_the_commands_run_without_pythonpath(tmp_path, argv):
    program = VENV_BIN / argv[0]
    if not program.exists():
        pytest.fail(f"{program} is missing: the project is not installed in the venv, run `make setup`")
    done = run([str(program), *argv[1:]], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ")
    if "sandbox" in " ".join(argv):
        assert "{up,down,status,fault,traffic" in done.stdout


#: In the child: load Airflow's plugins (plugins/ is its plugins folder), then report where every
#: module of the project came from.
MODULES = """
import json, sys
from airflow import plugins_manager
plugins, errors = plugins_manager._get_plugins()
import varai_deploy, varai_deploy.provider_info
root = sys.argv[1]
print(json.dumps({
    "plugins": [p.name for p in plugins],
    "errors": errors,
    "package": varai_deploy.__file__,
    "modules": {name: getattr(m, "__file__", None) for name, m in list(sys.modules.items())
                if (getattr(m, "__file__", None) or "").startswith(root)},
}))
"""


@pytest.mark.parametrize("pythonpath", [None, "plugins"], ids=["installed", "installed and PYTHONPATH=plugins"])
def test_the_installed_package_is_the_plugins_folders_own(tmp_path, pythonpath):
    """Without PYTHONPATH (the editable install) and with it (``airflow.sh``), under Airflow's plugin
    manager: one varai_deploy, from plugins/, and no module of it imported under a second name."""
    env = {
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path),
    }
    if pythonpath:
        env["PYTHONPATH"] = str(REPO_ROOT / pythonpath)
    done = run([sys.executable, "-c", MODULES, str(PLUGINS)], tmp_path, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "varai_deploy" in found["plugins"], found["errors"]
    assert not found["errors"]
    assert found["package"] == str(PLUGINS / "varai_deploy" / "__init__.py")
    by_file: dict[str, list[str]] = {}
    for name, file in found["modules"].items():
        by_file.setdefault(file, []).append(name)
    twice = {file: names for file, names in by_file.items() if len(names) > 1}
    assert not twice, f"imported under more than one name: {twice}"
    for name, file in found["modules"].items():
        relative = Path(file).relative_to(PLUGINS).with_suffix("")
        expected = ".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)
        assert name == expected, (name, file)
