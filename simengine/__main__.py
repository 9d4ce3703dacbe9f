"""``python -m simengine``: the command line."""

from .cli import main

raise SystemExit(main())
