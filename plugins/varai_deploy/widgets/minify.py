"""Minify the widget with the pinned pure-Python ``rjsmin`` (no Node at build time) and hash it for SRI."""

from __future__ import annotations

import base64
import hashlib


def minify_js(source: bytes) -> bytes:
    """Strip comments and whitespace; ``/*! ... */`` banners (version, licence) are kept.

    rjsmin's C extension and its pure-Python fallback give the same output, so every machine
    builds the same bytes whichever of the two it has.
    """
    try:
        import rjsmin
    except ImportError as exc:  # pragma: no cover - requirements.txt pins it
        raise RuntimeError("rjsmin is not installed: install the project's requirements.txt") from exc
    return rjsmin.jsmin(source.decode("utf-8"), keep_bang_comments=True).encode("utf-8")


def sri(data: bytes) -> str:
    """The Subresource Integrity value for a ``<script integrity=...>``: ``sha384-<base64>``."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")
