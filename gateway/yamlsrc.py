"""YAML loading that remembers where each value stood, so problems can be reported as FILE:LINE."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]

# Builds scalars (and keys) exactly as safe_load would; the tree around them is built below.
_SCALARS = yaml.SafeLoader("")
# libyaml when present: the same nodes and line marks, parsed about 20x faster (reloads, start-up).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class SourceFile:
    """A parsed YAML document and the line (1-based) of every key and item in it."""

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int:
        """The line of ``loc``, or of its nearest ancestor that has one."""
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)

    def where(self, loc: Loc) -> str:
        return f"{self.path}:{self.line_of(loc)}"


class YamlProblem(Exception):
    """A file that cannot be read or parsed as YAML."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


def load_yaml(path: Path) -> SourceFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlProblem(path, 1, f"cannot read file: {exc.strerror}") from exc
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise YamlProblem(path, line, f"invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    source = SourceFile(path=path, data=None, lines={(): 1})
    if node is not None:
        try:
            source.data = _construct(node, (), source.lines)
        except _Duplicate as exc:
            raise YamlProblem(path, exc.line, exc.message) from exc
    return source


class _Duplicate(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


def _construct(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _SCALARS.construct_object(key_node, deep=True)
            if key in result:
                raise _Duplicate(key_node.start_mark.line + 1, f"duplicate key {key!r} (the first would be ignored)")
            lines[(*loc, key)] = key_node.start_mark.line + 1
            result[key] = _construct(value_node, (*loc, key), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*loc, i), lines) for i, item in enumerate(node.value)]
    return _SCALARS.construct_object(node, deep=True)
