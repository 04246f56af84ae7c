"""The sandbox: a running stand-in for production on loopback.

Each deployed version of a service runs in its own local HTTP process in a colour slot
(blue or green) and a gateway process routes by path prefix to the live colour, so blue-green
releases, rollbacks and faults are exercised for real. ``python -m varai_deploy.sandbox`` is
the command-line face; :class:`Sandbox` is the Python API the ``LocalPlatform`` uses.

This module stays light on purpose: the service, gateway and launcher processes are
submodules of this package, so anything imported here is paid for at every process start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from varai_deploy.sandbox.errors import PortInUseError, SandboxError

if TYPE_CHECKING:
    from varai_deploy.sandbox.control import Sandbox
    from varai_deploy.sandbox.settings import SandboxSettings

__all__ = ["PortInUseError", "Sandbox", "SandboxError", "SandboxSettings"]


def __getattr__(name: str) -> Any:
    # Imported on first use so that `import varai_deploy.sandbox.service` does not pull in yaml & co.
    if name == "Sandbox":
        from varai_deploy.sandbox.control import Sandbox

        return Sandbox
    if name == "SandboxSettings":
        from varai_deploy.sandbox.settings import SandboxSettings

        return SandboxSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
