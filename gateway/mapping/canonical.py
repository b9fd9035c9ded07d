"""What the canonical request bodies hold, field by field, as the map compiler needs it.

A *field* is a path in map syntax: ``name``, ``schedule.days``, ``recipients[*].phone_number``.
The leaves (fields with no canonical sub-fields) are what capabilities are reported in: each
leaf of an operation's body is carried by the vendor request, carried by a composed step, or
unsupported. Names a map writes (``unsupported``, ``required``, ``body.*`` sources, shape
targets) are checked against these catalogues, with the nearest valid name suggested.
"""

from __future__ import annotations

import difflib
import types
import typing
from functools import cache

from pydantic import BaseModel

from gateway import models
from gateway.mapping.paths import EVERY, Path, PathError, parse_path

REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "create": models.CampaignCreate,
    "update": models.CampaignUpdate,
    "recipients_add": models.RecipientsAdd,
}


def field_text(path: Path) -> str:
    """A path in map syntax: ``("recipients", "*", "name")`` -> ``recipients[*].name``."""
    text = ""
    for step in path:
        text += f"[{step}]" if step == EVERY or isinstance(step, int) else (f".{step}" if text else step)
    return text


def inner_model(annotation: object) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (directly, optionally, or as a list of it) and whether it is a list."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for option in options:
        if typing.get_origin(option) is list:
            inner, _ = inner_model(typing.get_args(option)[0])
            return inner, True
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option, False
    return None, False


@cache
def leaves(model: type[BaseModel]) -> tuple[Path, ...]:
    """Every leaf field of ``model`` in declaration order; list elements step through ``*``."""
    out: list[Path] = []
    for name, info in model.model_fields.items():
        inner, is_list = inner_model(info.annotation)
        if inner is None:
            out.append((name,))
            continue
        prefix: Path = (name, EVERY) if is_list else (name,)
        out.extend((*prefix, *leaf) for leaf in leaves(inner))
    return tuple(out)


@cache
def nodes(model: type[BaseModel]) -> frozenset[Path]:
    """Every field of ``model`` a map may name: the leaves and each object or list above them."""
    found: set[Path] = set()
    for leaf in leaves(model):
        found.update(leaf[:end] for end in range(1, len(leaf) + 1) if leaf[end - 1] != EVERY)
    return frozenset(found)


def under(leaf: Path, field: Path) -> bool:
    """``leaf`` is ``field`` or lies inside it."""
    return leaf[: len(field)] == field


def covered_by(field: Path, model: type[BaseModel]) -> list[Path]:
    """The leaves a field name stands for (``schedule`` -> its six leaves)."""
    return [leaf for leaf in leaves(model) if under(leaf, field)]


def parse_field(
    text: object, model: type[BaseModel], *, indexes: bool = False, exclude: frozenset[str] = frozenset()
) -> tuple[Path | None, str | None]:
    """The path of a canonical field name, or None and a message saying what is wrong (with a suggestion).

    With ``indexes``, ``recipients[0].name`` is accepted as an element of ``recipients[*]``;
    top-level fields in ``exclude`` are not names a map may use.
    """
    try:
        path = parse_path(str(text))
    except PathError as exc:
        return None, str(exc)
    general = tuple(EVERY if isinstance(step, int) and indexes else step for step in path)
    allowed = {node for node in nodes(model) if node[0] not in exclude}
    if general in allowed:
        return general, None
    names = sorted(field_text(node) for node in allowed)
    close = difflib.get_close_matches(str(text), names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f" (one of: {', '.join(names)})"
    return None, f"{str(text)!r} is not a canonical field of {model.__name__}{hint}"
