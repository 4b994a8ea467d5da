"""Config errors that name the key, the bad value and what is allowed: never a stack trace."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    """Fully qualified key, e.g. ``mlflow-platform:database.instanceClass``."""
    value: object
    expected: str

    def __str__(self) -> str:
        shown = "<missing>" if self.value is _MISSING else repr(self.value)
        return f"{self.key}: got {shown}; expected {self.expected}"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
MISSING: object = _MISSING


class ConfigError(Exception):
    """All problems of a stack's config at once, so one preview shows every mistake."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid stack configuration ({len(problems)} problem(s)):\n{lines}")
