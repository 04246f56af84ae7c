"""Byte-reproducible zip archives: same files in, same bytes out, on any machine."""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Mapping

#: Every entry's timestamp (zip's earliest representable date): no build time leaks into the bytes.
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_UNIX = 3


def deterministic_zip(files: Mapping[str, bytes]) -> bytes:
    """A zip of ``{"path/in/zip": bytes}``: sorted entries, fixed timestamps and modes (0644), no extras.

    Entries are stored, not deflated: deflate output depends on the zlib build, and the release
    manifest's sha256 of the zip must be reproducible by any worker. The packages are a few kB.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            if name.startswith("/") or ".." in name.split("/") or "\\" in name:
                raise ValueError(f"unsafe zip entry name {name!r}")
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.create_system = _UNIX
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, files[name])
    return buffer.getvalue()
