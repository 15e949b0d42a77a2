"""Errors that carry their location.

Every error a user can cause names where it happened (file, line, key), what was
expected and what was found, in the form ``posts/a.md:5: 'date' must be ...``.
The CLI is the only place that turns these into exit codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file, optionally a line and column."""

    path: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        text = self.path
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        return text


@dataclass(frozen=True)
class Problem:
    """One user-facing problem: a location and a sentence about it."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class PublisherError(Exception):
    """Base class for every error Publisher reports to a person.

    ``hint`` says what to do about it; the CLI prints it below the message.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ProblemsError(PublisherError):
    """Many located problems, collected and reported at once."""

    title = "problems"

    def __init__(self, problems: Iterable[Problem], hint: str | None = None) -> None:
        self.problems = sorted(problems, key=_problem_sort_key)
        lines = [str(problem) for problem in self.problems]
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} {self.title} {noun}:\n" + "\n".join(lines), hint)


def _problem_sort_key(problem: Problem) -> tuple[str, int, int, str]:
    loc = problem.location
    return (loc.path, loc.line or 0, loc.column or 0, problem.message)


class ConfigError(ProblemsError):
    """config.toml is invalid; every bad key is listed."""

    title = "configuration"


class ContentError(ProblemsError):
    """One or more posts are invalid; every problem in every post is listed."""

    title = "content"
