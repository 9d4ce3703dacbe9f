"""``python -m simengine``: the command line."""

from .cli import entry

raise SystemExit(entry())
