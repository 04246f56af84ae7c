"""``python -m varai_deploy.sandbox``: see ``cli.py``."""

import sys

from varai_deploy.sandbox.cli import main

sys.exit(main())
