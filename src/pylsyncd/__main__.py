"""`python -m pylsyncd` runs the command-line interface."""

from pylsyncd.cli import main

raise SystemExit(main())
