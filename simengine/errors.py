"""Errors meant for people: each names the file, the key path, the value and what was expected.

A message reads ``FILE: KEY.PATH = VALUE: expected WHAT``, or ``FILE: KEY.PATH is missing:
expected WHAT`` for a required key that is absent, or ``FILE: LINE, COLUMN: expected WHAT`` where
the file may not be a scenario at all (its content is never shown). Several problems in one file are raised
together as :class:`ScenarioErrors`, one line each.
"""

from __future__ import annotations


class _Missing:
    """The value of a required key that is not there (shown as ``is missing``)."""

    def __reduce__(self):
        return "MISSING"

    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


class _NotShown:
    """The value of a problem whose file may not be a scenario at all (shown by position only)."""

    def __reduce__(self):
        return "NOT_SHOWN"

    def __repr__(self) -> str:
        return "<not shown>"


NOT_SHOWN = _NotShown()


class ScenarioError(ValueError):
    """A scenario (or its pool file) is not valid.

    Attributes ``file``, ``key_path``, ``value`` and ``expected`` hold the parts of the message.
    The CLI turns this into exit code 2 and writes nothing.
    """

    def __init__(self, file: str, key_path: str, value, expected: str):
        self.file = str(file)
        self.key_path = key_path
        self.value = value
        self.expected = expected
        where = key_path or "<top level>"
        if value is MISSING:
            text = f"{self.file}: {where} is missing: expected {expected}"
        elif value is NOT_SHOWN:
            text = f"{self.file}: {where}: expected {expected}"
        else:
            text = f"{self.file}: {where} = {_show(value)}: expected {expected}"
        super().__init__(text)

    def __reduce__(self):  # picklable (batch workers send errors back to the scheduler)
        return (type(self), (self.file, self.key_path, self.value, self.expected))


class ScenarioErrors(ScenarioError):
    """Several problems found in one file; the message lists them all, one a line.

    ``errors`` is the list of single :class:`ScenarioError`; ``file``, ``key_path``, ``value``
    and ``expected`` are those of the first.
    """

    def __init__(self, errors: list[ScenarioError]):
        self.errors = errors
        first = errors[0]
        ValueError.__init__(self, "\n".join(str(e) for e in errors))
        self.file, self.key_path, self.value, self.expected = (
            first.file, first.key_path, first.value, first.expected)

    def __reduce__(self):
        return (type(self), (self.errors,))


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
