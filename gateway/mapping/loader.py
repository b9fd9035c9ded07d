"""Reads every map file in a folder, validates and compiles it, and reports problems by line."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from gateway.mapping.compiler import MapErrors, VendorMap, compile_map
from gateway.mapping.spec import MapSpec
from gateway.problems import Problem, at, from_validation
from gateway.yamlsrc import YamlProblem, load_yaml


def load_maps(
    directory: Path, compiled: Mapping[str, VendorMap] | None = None
) -> tuple[dict[str, VendorMap], list[Problem]]:
    """Every ``*.yaml`` in ``directory`` compiled, keyed by vendor name and alias.

    A file whose bytes are those a map in ``compiled`` was made from (same digest) is not parsed
    again: a reload that leaves the maps alone compiles none of them.
    """
    maps: dict[str, VendorMap] = {}
    problems: list[Problem] = []
    if not directory.is_dir():
        return maps, [Problem(str(directory), 1, "the mappings folder does not exist")]
    by_digest = {(m.name, m.digest): m for m in (compiled or {}).values() if m.digest}
    for path in sorted(directory.glob("*.yaml")):
        known = by_digest.get((path.stem, _digest(path)))
        vendor_map, found = (known, []) if known is not None else load_map(path)
        problems.extend(found)
        if vendor_map is None:
            continue
        for name in (vendor_map.name, *vendor_map.aliases):
            if name in maps:
                problems.append(Problem(str(path), 1, f"vendor name {name!r} is already taken by another map"))
            maps[name] = vendor_map
    return maps, problems


def load_map(path: Path) -> tuple[VendorMap | None, list[Problem]]:
    try:
        source = load_yaml(path)
    except YamlProblem as exc:
        return None, [Problem(str(exc.path), exc.line, exc.message)]
    if not isinstance(source.data, dict):
        return None, [at(source, (), "a map file is an object with vendor, base_url and operations")]
    try:
        spec = MapSpec.model_validate(source.data)
    except ValidationError as exc:
        return None, from_validation(source, exc)
    if spec.vendor != path.stem:
        return None, [
            at(
                source,
                ("vendor",),
                f"vendor {spec.vendor!r} must match the file name {path.stem!r}",
            )
        ]
    try:
        vendor_map = compile_map(spec)
    except MapErrors as exc:
        return None, [at(source, error.loc, error.message) for error in exc.errors]
    vendor_map.digest = _digest(path)
    return vendor_map, []


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:32]
    except OSError:
        return ""  # load_map reports the file it cannot read


def names_in(file: str) -> set[str]:
    """The vendor names a map file would have given (its stem and aliases), even when it failed to load."""
    names = {Path(file).stem}
    try:
        aliases = load_yaml(Path(file)).data.get("aliases")
    except (YamlProblem, AttributeError):
        return names
    return names | {str(alias) for alias in aliases} if isinstance(aliases, list) else names
