"""Which canonical fields each operation of a map sends, leaves to a later step, or cannot carry.

Derived from the compiled requests, never hand-listed (the map's ``unsupported:`` is only checked):
each operation with a body gets its FieldPlan and its steps (``then:``), and whatever contradicts
what the map really sends — a required field it never sends, a listed "unsupported" field it does
send, a step that cannot take what it should carry — is a problem with its place in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.mapping.canonical import REQUEST_MODELS, covered_by, field_text, leaves, nodes, parse_field, under
from gateway.mapping.capabilities import FieldPlan, Requirement
from gateway.mapping.paths import Path, compile_getter, set_at
from gateway.mapping.spec import MapSpec
from gateway.mapping.transforms import Fn, MapError

if TYPE_CHECKING:
    from gateway.mapping.compiler import CompiledOperation

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Step:
    """A later operation of a composed one, sent the fields it ``carries`` under the same names."""

    operation: str
    carries: tuple[tuple[Path, Fn], ...]

    def body(self, request_body: dict[str, Any]) -> dict[str, Any] | None:
        """The step's canonical body, or None when the request sets none of the fields it carries."""
        out: dict[str, Any] = {}
        for path, get in self.carries:
            value = get(request_body)
            if value not in (None, [], {}):
                set_at(out, path, value)
        return out or None


def plan_fields(
    spec: MapSpec, operations: dict[str, CompiledOperation], native: dict[str, list[Path]], problems: list[MapError]
) -> None:
    """Give each operation with a body its FieldPlan and steps; report what contradicts the map's own sending."""
    required = {
        name: _names(op.required, REQUEST_MODELS.get(name), ("operations", name, "required"), name, problems)
        for name, op in spec.operations.items()
    }
    for name, op in spec.operations.items():
        model, compiled, loc = REQUEST_MODELS.get(name), operations.get(name), ("operations", name)
        if model is None:
            if op.then:
                problems.append(
                    MapError(f"operation {name} takes no body, so it has nothing to pass on", (*loc, "then"))
                )
            continue
        if compiled is None:
            continue
        steps, composed, needs = _link_steps(name, spec, model, native, required, problems)
        sent = set(native[name]) | set(composed)
        listed = [(text, (*loc, "unsupported", i)) for i, text in enumerate(op.unsupported)]
        listed += [(text, (*loc, "unconverted", text)) for text in op.unconverted]
        notes: dict[Path, str] = {}
        for text, where in listed:
            path, problem = parse_field(text, model)
            if problem is None and path is not None and any(leaf in sent for leaf in covered_by(path, model)):
                problem = f"{text!r} is listed as {where[2]}, but the map sends it"
            if problem is not None:
                problems.append(MapError(problem, where))
            elif path is not None and text in op.unconverted:
                notes[path] = op.unconverted[text]
        for i, path in enumerate(required[name]):
            if not any(leaf in sent for leaf in covered_by(path, model)):
                problems.append(
                    MapError(f"{field_text(path)!r} is required, but the map never sends it", (*loc, "required", i))
                )
        unsupported = [leaf for leaf in leaves(model) if leaf not in sent]
        own = [Requirement(path) for path in required[name]]
        compiled.fields = FieldPlan(native[name], composed, unsupported, own + needs, notes)
        compiled.steps = steps


def _names(texts: list[str], model: Any, loc: Loc, operation: str, problems: list[MapError]) -> list[Path]:
    paths = []
    for i, text in enumerate(texts):
        if model is None:
            problems.append(MapError(f"operation {operation} takes no body, so no field can be required", (*loc, i)))
            continue
        path, problem = parse_field(text, model)
        if problem is not None:
            problems.append(MapError(problem, (*loc, i)))
        elif path is not None:
            paths.append(path)
    return paths


def _link_steps(
    name: str,
    spec: MapSpec,
    model: Any,
    native: dict[str, list[Path]],
    required: dict[str, list[Path]],
    problems: list[MapError],
) -> tuple[list[Step], dict[Path, str], list[Requirement]]:
    """The steps of ``name``, the leaves they carry (leaf -> step), and what they need when they run."""
    steps: list[Step] = []
    composed: dict[Path, str] = {}
    needs: list[Requirement] = []
    for i, step in enumerate(spec.operations[name].then):
        loc: Loc = ("operations", name, "then", i)
        target_model = REQUEST_MODELS.get(step.operation)
        problem = None
        if step.operation == name or step.operation not in native:
            problem = f"step {step.operation!r} is not another (compiled) operation of this map"
        elif spec.operations[step.operation].then:
            problem = f"step {step.operation!r} has steps of its own; a step runs one operation"
        elif step.operation in {s.operation for s in steps}:
            problem = f"step {step.operation!r} is listed twice"
        elif target_model is None:
            problem = f"operation {step.operation} takes no body, so it cannot carry fields"
        if problem is not None:
            problems.append(MapError(problem, (*loc, "operation")))
            continue
        carries = []
        for j, text in enumerate(step.carries):
            path, problem = parse_field(text, model)
            if path is not None and path not in nodes(target_model):
                problem = f"{text!r} is not a field of the {step.operation} body"
            elif path is not None and any(under(leaf, path) for leaf in native[name]):
                problem = f"{text!r} is sent by {name} itself and cannot also go to step {step.operation}"
            if problem is not None or path is None:
                problems.append(MapError(problem or "", (*loc, "carries", j)))
                continue
            carries.append(path)
            composed |= {leaf: step.operation for leaf in covered_by(path, model) if leaf in native[step.operation]}
            needs += [Requirement(need, only_with=path) for need in required[step.operation] if under(need, path)]
        steps.append(Step(step.operation, tuple((path, compile_getter(path)) for path in carries)))
    return steps, composed, needs
