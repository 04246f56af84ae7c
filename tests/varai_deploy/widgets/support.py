"""Shared by the widget tests: the version they build and how to open its Composer zip."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

VERSION = "v1.4.2"
PLAIN = "1.4.2"


def magento_zip(out: Path, plain: str = PLAIN) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO((out / "magento" / f"varai-module-ai-discovery-{plain}.zip").read_bytes()))
