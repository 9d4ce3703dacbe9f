"""Command-line pieces every subcommand shares: the parser class, argument types, exit codes and
the INVALID lines of bad input."""

from __future__ import annotations

import argparse
import math
import sys

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse with bad usage exiting 2 (bad input), in argparse's own words."""

    def error(self, message):
        """Print the usage and the message; exit 2."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _number(text: str, parse, kind: str, ok, expected: str):
    """``parse(text)`` if it parses and ``ok`` holds of it, or argparse's error naming ``text`` and
    what was expected (``kind`` where it does not parse)."""
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {kind}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (underscores allowed), or argparse's error."""
    return _number(text, lambda t: int(t.replace("_", "")), "a whole number", lambda v: v >= 1,
                   "a whole number >= 1")


def positive_float(text: str) -> float:
    """A finite number > 0, or argparse's error."""
    return _number(text, float, "a number", lambda v: 0 < v < math.inf, "a number > 0")


def seed_arg(text: str) -> int:
    """A seed in [0, 2**63), or argparse's error."""
    return _number(text, int, "a whole number", lambda v: 0 <= v < 2**63, "0 <= seed < 2**63")


def invalid(exc) -> None:
    """Each line of a bad-input message as ``INVALID ...`` on stderr."""
    for line in str(exc).splitlines():
        print(f"INVALID {line}", file=sys.stderr)
