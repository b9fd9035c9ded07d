"""Problems found in config and map files, reported as ``FILE:LINE: message``."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from gateway.yamlsrc import SourceFile


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def at(source: SourceFile, loc: tuple[str | int, ...], message: str) -> Problem:
    return Problem(str(source.path), source.line_of(loc), message)


def from_validation(source: SourceFile, error: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[Problem]:
    """One Problem per pydantic error, placed on the line of the offending key."""
    problems = []
    for item in error.errors():
        loc = (*prefix, *(step for step in item["loc"] if step != "[key]"))
        name = ".".join(str(step) for step in loc) or "file"
        if item["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r} in {'.'.join(map(str, loc[:-1])) or 'the file'}"
        elif item["type"] == "missing":
            message = f"missing key {name!r}"
        else:
            message = f"{name}: {item['msg']}"
        problems.append(at(source, loc, message))
    return problems
