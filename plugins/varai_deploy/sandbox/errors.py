"""Errors the sandbox raises; the CLI prints them as ``error: ...`` without a traceback."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """The sandbox refused an operation; the message says why and what to do."""


class PortInUseError(SandboxError):
    """A port the sandbox needs is held by a process that is not one of ours."""

    def __init__(self, message: str, host: str, port: int) -> None:
        super().__init__(message)
        self.host = host
        self.port = port


class SwitchConflictError(SandboxError):
    """A checked switch found the service changed since the caller looked: nothing moved."""
