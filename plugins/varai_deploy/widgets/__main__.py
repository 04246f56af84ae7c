"""``python -m varai_deploy.widgets``: see ``cli.py``."""

import sys

from varai_deploy.widgets.cli import main

sys.exit(main())
