"""A network namespace of its own for a pytest-xdist worker process, with its loopback up.

The unit tests take sandbox ports from fixed blocks in 19380-19999 (``tests/varai_deploy/conftest.py``
and the stand-in stacks in ``tests/support``), each checked free just before use: two workers on one
loopback would take each other's. With a loopback each, they cannot meet, nor meet a ``make demo``
sandbox on the host. Needs CAP_SYS_ADMIN (root); ``make test`` runs one worker where it is missing.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def enter_own_loopback() -> None:
    """Moves this process (its main thread, and every process it starts from now on) into a new
    network namespace and brings its ``lo`` up; execnet's pipes to the controller are unaffected."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare(CLONE_NEWNET) failed (root needed): errno {errno}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))
