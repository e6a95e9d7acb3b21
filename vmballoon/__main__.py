"""``python -m vmballoon``: the command-line interface."""

from vmballoon.apps.cli import main

raise SystemExit(main())
