"""What an operation does with each canonical field of its body, derived from the map, and the checks that follow.

Every leaf of the body is exactly one of: *native* (the vendor request carries it), *composed*
(a later step of the operation carries it) or *unsupported* (nothing carries it). Nothing is
hand-listed: a leaf the map does not send is unsupported, so no field can vanish unseen. A
request setting an unsupported leaf is refused (strict) or sent without it and told so
(lenient); a request lacking a *required* field is refused either way. A refusal says which of
the two it is: the vendor has no such field, or the map has no conversion to the vendor's field
(the map's ``unconverted`` notes).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.mapping.canonical import field_text
from gateway.mapping.paths import EVERY, Path, compile_getter

_ABSENT = (None, [], {}, "")


@dataclass(frozen=True)
class Requirement:
    """A field a request must have; ``only_with`` limits it to requests that set that field (a step's needs)."""

    path: Path
    only_with: Path | None = None


@dataclass(frozen=True)
class FieldOutcome:
    """What applying a plan to one request body gives."""

    body: dict[str, Any]
    dropped: list[str]
    problems: list[dict[str, str]]


class FieldPlan:
    """One operation's fields, and the strict / lenient handling of a request body against them."""

    def __init__(
        self,
        native: list[Path],
        composed: dict[Path, str],
        unsupported: list[Path],
        required: list[Requirement],
        unconverted: dict[Path, str] | None = None,
    ) -> None:
        self.native, self.composed, self.unsupported, self.required = native, composed, unsupported, required
        notes = unconverted or {}
        self._unsupported = [(field_text(path), path, compile_getter(path), _note(path, notes)) for path in unsupported]
        self._required = [
            (r, _missing_finder(r.path), compile_getter(r.only_with) if r.only_with else None) for r in required
        ]

    def report(self) -> dict[str, list[str]]:
        """The capability entry of ``GET /v1/connections``: field names per outcome."""
        required: dict[str, None] = {}
        for requirement in self.required:
            required.setdefault(field_text(requirement.path))
        return {
            "native": [field_text(path) for path in self.native],
            "composed": [field_text(path) for path in self.composed],
            "unsupported": [field_text(path) for path in self.unsupported],
            "required": list(required),
        }

    def apply(self, body: dict[str, Any], lenient: bool, vendor: str) -> FieldOutcome:
        """Refuse or leave out what the vendor cannot carry, and find what it needs but the body lacks."""
        problems: list[dict[str, str]] = []
        present = [(name, path, note) for name, path, get, note in self._unsupported if get(body) not in _ABSENT]
        if present and lenient:
            body = copy.deepcopy(body)
            for _name, path, _note in present:
                _remove(body, path)
        elif present:
            problems += [{"field": name, "message": _refusal(vendor, note)} for name, _, note in present]
        for _requirement, missing, condition in self._required:
            if condition is not None and condition(body) in _ABSENT:
                continue
            problems += [{"field": name, "message": f"{vendor} requires this field"} for name in missing(body)]
        return FieldOutcome(body, [name for name, _, _ in present] if lenient else [], problems)


def _note(leaf: Path, notes: dict[Path, str]) -> str | None:
    """The map's note on why it cannot convert this leaf (given on the leaf or a field above it)."""
    return next((note for path, note in notes.items() if leaf[: len(path)] == path), None)


def _refusal(vendor: str, note: str | None) -> str:
    if note is None:
        return f"{vendor} has no equivalent for this field"
    return f"{vendor} has a related field, but the map has no conversion to it: {note}"


def _missing_finder(path: Path) -> Callable[[Any], list[str]]:
    """Names (with real indexes: ``recipients[2].name``) where ``path`` has no value in a body."""

    def missing(doc: Any, steps: Path, where: str) -> list[str]:
        if not steps:
            return [where] if doc in _ABSENT else []
        step, rest = steps[0], steps[1:]
        if step == EVERY:
            items = doc if isinstance(doc, list) else []
            return [name for index, item in enumerate(items) for name in missing(item, rest, f"{where}[{index}]")]
        value = doc.get(step) if isinstance(doc, dict) else None
        if value is None and rest and EVERY in rest:
            return []  # no list, so no element lacks anything; a requirement on the list itself says otherwise
        return missing(value, rest, f"{where}.{step}" if where else str(step))

    return lambda body: missing(body, path, "")


def _remove(doc: Any, path: Path) -> None:
    """Delete the value at ``path`` (in every element, through ``*``)."""
    step, rest = path[0], path[1:]
    if step == EVERY:
        for item in doc if isinstance(doc, list) else []:
            _remove(item, rest)
        return
    if not isinstance(doc, dict) or step not in doc:
        return
    if rest:
        _remove(doc[step], rest)
    else:
        del doc[step]
