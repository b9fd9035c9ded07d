"""Paths into JSON documents: ``a.b``, ``items[0].id``, ``items[-1].id``, ``sets[*].numbers[*]``.

A path is parsed once into a tuple of steps (a key, an index, or ``*`` for every element) and
compiled into a getter. ``*`` flattens: ``sets[*].numbers[*]`` is one list of all numbers. A
negative index counts from the end (``[-1]`` is the last element). Target paths (where a value is
written) take keys and indexes from the start only.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

Step = str | int
Path = tuple[Step, ...]
EVERY = "*"

_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)?((?:\[(?:\*|-?\d+)\])*)")
_INDEX = re.compile(r"\[(\*|-?\d+)\]")


class PathError(ValueError):
    """A path string that does not follow the path syntax."""


def parse_path(text: str, *, allow_every: bool = True) -> Path:
    if not isinstance(text, str) or not text:
        raise PathError(f"a path must be a non-empty string, not {text!r}")
    steps: list[Step] = []
    for segment in text.split("."):
        match = _SEGMENT.fullmatch(segment)
        if not match or segment == "":
            raise PathError(f"bad path {text!r}: cannot read segment {segment!r}")
        key, indexes = match.groups()
        if key:
            steps.append(key)
        for index in _INDEX.findall(indexes):
            if index == EVERY and not allow_every:
                raise PathError(f"bad path {text!r}: [*] is not allowed here")
            if index.startswith("-") and not allow_every:
                raise PathError(f"bad path {text!r}: [{index}] is not allowed here (a target counts from the start)")
            steps.append(EVERY if index == EVERY else int(index))
    return tuple(steps)


def compile_getter(path: Path) -> Callable[[Any], Any]:
    """A function returning the value at ``path``, or None where any step is missing."""
    if EVERY in path:
        split = path.index(EVERY)
        head, rest = compile_getter(path[:split]), compile_getter(path[split + 1 :])
        flatten = EVERY in path[split + 1 :]

        def get_every(doc: Any) -> Any:
            items = head(doc)
            if not isinstance(items, list):
                return None
            out: list[Any] = []
            for item in items:
                value = rest(item)
                if flatten and isinstance(value, list):
                    out.extend(value)
                elif value is not None:
                    out.append(value)
            return out

        return get_every

    if len(path) == 1 and isinstance(path[0], str):  # the most common path, read the quickest
        key = path[0]
        return lambda doc: doc.get(key) if isinstance(doc, dict) else None

    def get(doc: Any) -> Any:
        for step in path:
            if isinstance(step, str):
                if not isinstance(doc, dict):
                    return None
                doc = doc.get(step)
            else:
                if not isinstance(doc, list) or not -len(doc) <= step < len(doc):
                    return None
                doc = doc[step]
            if doc is None:
                return None
        return doc

    return get


def set_at(doc: dict[str, Any], path: Path, value: Any) -> None:
    """Write ``value`` at ``path`` inside ``doc``, creating objects and lists on the way."""
    node: Any = doc
    for step, following in itertools.pairwise(path):
        empty: Any = [] if isinstance(following, int) else {}
        node = _child(node, step, empty)
    last = path[-1]
    if isinstance(last, int):
        _pad(node, last)
    node[last] = value


def _child(node: Any, step: Step, empty: Any) -> Any:
    if isinstance(step, int):
        _pad(node, step)
        if node[step] is None:
            node[step] = empty
        return node[step]
    return node.setdefault(step, empty)


def _pad(items: list[Any], index: int) -> None:
    items.extend([None] * (index + 1 - len(items)))


def without_paths(doc: Any, paths: list[Path]) -> Any:
    """A copy of ``doc`` with every value at ``paths`` removed and emptied containers pruned."""
    tree: dict[Step, Any] = {}
    for path in paths:
        node = tree
        for step in path[:-1]:
            node = node.setdefault(step, {})
            if node is True:
                break
        else:
            node[path[-1]] = True
    pruned = _prune(doc, tree)
    return type(doc)() if pruned is _GONE else pruned


_GONE = object()


def _prune(doc: Any, tree: Any) -> Any:
    if tree is True:
        return _GONE
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            kept = _prune(value, tree[key]) if key in tree else value
            if kept is not _GONE:
                out[key] = kept
        return out if out or not doc else _GONE
    if isinstance(doc, list) and (EVERY in tree or any(isinstance(k, int) for k in tree)):
        kept_items = []
        for index, item in enumerate(doc):
            kept = item
            for sub in (tree.get(EVERY), tree.get(index)):
                if sub is not None and kept is not _GONE:
                    kept = _prune(kept, sub)
            kept_items.append(None if kept is _GONE else kept)
        return kept_items if any(item is not None for item in kept_items) else _GONE
    return doc
