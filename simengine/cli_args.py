"""Command-line pieces every subcommand shares: the parser class, argument types, exit codes and
the INVALID lines of bad input."""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse with bad usage exiting 2 (bad input), in argparse's own words."""

    def error(self, message):
        """Print the usage and the message; exit 2."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    """A whole number >= 1 (underscores allowed), or argparse's error."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0, or argparse's error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number > 0")
    return value


def seed_arg(text: str) -> int:
    """A seed in [0, 2**63), or argparse's error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 <= seed < 2**63")
    return value


def invalid(exc) -> None:
    """Each line of a bad-input message as ``INVALID ...`` on stderr."""
    for line in str(exc).splitlines():
        print(f"INVALID {line}", file=sys.stderr)
