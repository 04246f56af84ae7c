"""``python -m varai_deploy.widgets``: build a widget release, or check a channel's file against its manifest.

    python -m varai_deploy.widgets build --version v1.4.2 --out build/widgets
    python -m varai_deploy.widgets verify --manifest build/widgets --channel woocommerce \\
        --path assets/js/varai-widget.min.js /tmp/export/assets/js/varai-widget.min.js

``build`` prints the manifest (JSON) on stdout. Exit status: 0 ok, 1 integrity mismatch, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from varai_deploy.config import ConfigError
from varai_deploy.widgets.build import WIDGETS_DIR, WidgetBuildError, build_release
from varai_deploy.widgets.manifest import Manifest, WidgetIntegrityError, verify_against_manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.widgets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build every channel's artifact and manifest.json")
    build.add_argument("--version", required=True, help="release tag, e.g. v1.4.2")
    build.add_argument("--out", required=True, type=Path, help="new, empty, or earlier widget build directory")
    build.add_argument("--sources", type=Path, default=WIDGETS_DIR, help="default: include/widgets")
    verify = commands.add_parser("verify", help="check a file a channel serves against the manifest")
    verify.add_argument("--manifest", required=True, type=Path, help="manifest.json or its build directory")
    verify.add_argument("--channel", required=True)
    verify.add_argument("--path", required=True, help="the file's path in what the channel ships")
    verify.add_argument("file", type=Path)
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            manifest = build_release(args.version, args.out, sources=args.sources)
            sys.stdout.write(manifest.to_json())
        else:
            artifact = verify_against_manifest(Manifest.load(args.manifest), args.channel, args.file, args.path)
            print(f"{args.channel}: {artifact.path} matches the release manifest (sha256 {artifact.sha256})")
    except WidgetIntegrityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, WidgetBuildError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
