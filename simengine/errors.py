"""Errors meant for people: each names the file, the key path, the value and what was expected."""

from __future__ import annotations


class ScenarioError(ValueError):
    """A scenario (or its pool file) is not valid.

    The CLI turns this into exit code 2 and writes nothing.
    """

    def __init__(self, file: str, key_path: str, value, expected: str):
        self.file = str(file)
        self.key_path = key_path
        self.value = value
        self.expected = expected
        shown = _show(value)
        super().__init__(f"{self.file}: {key_path or '<top level>'} = {shown}: expected {expected}")


class ScenarioErrors(ScenarioError):
    """Several problems found in one file; the message lists them all."""

    def __init__(self, errors: list[ScenarioError]):
        self.errors = errors
        first = errors[0]
        ValueError.__init__(self, "\n".join(str(e) for e in errors))
        self.file, self.key_path, self.value, self.expected = (
            first.file, first.key_path, first.value, first.expected)


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
