"""The capability table (vendor by operation and field), derived from the compiled maps of a config.

``gateway capabilities`` prints it; the README's vendor tables are this output, and a test
compares them, so the documentation cannot drift from the maps.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.config import Config
from gateway.mapping import VendorMap
from gateway.mapping.canonical import REQUEST_MODELS, field_text, leaves
from gateway.mapping.spec import OPERATION_NAMES

NATIVE, UNSUPPORTED, NOT_OFFERED = "✓", "–", "501"  # noqa: RUF001 (the en dash is meant)
LEGEND = (
    f"{NATIVE} the vendor request carries it · `+ OPERATION` a composed step carries it · "
    f"{UNSUPPORTED} the vendor cannot carry it (refused, or dropped when lenient) · "
    f"{NOT_OFFERED} the vendor has no such operation"
)


def vendors(config: Config) -> list[tuple[str, VendorMap]]:
    """Each map the config's connections use, once, under the vendor name the first connection gives it."""
    found: dict[int, tuple[str, VendorMap]] = {}
    for tenant in config.tenants.values():
        for connection in tenant.connections.values():
            found.setdefault(id(connection.map), (connection.vendor, connection.map))
    return list(found.values())


def operation_rows(columns: list[tuple[str, VendorMap]]) -> list[list[str]]:
    header = ["operation", *(name for name, _ in columns)]
    rows = [[name, *(NATIVE if name in m.operations else NOT_OFFERED for _, m in columns)] for name in OPERATION_NAMES]
    return [header, *rows]


def field_rows(columns: list[tuple[str, VendorMap]]) -> list[list[str]]:
    header = ["field", *(name for name, _ in columns)]
    rows = []
    for operation, model in REQUEST_MODELS.items():
        for leaf in leaves(model):
            field = field_text(leaf)
            rows.append([f"{operation}: {field}", *(_cell(m, operation, field) for _, m in columns)])
        required = [
            ", ".join(m.capabilities[operation]["required"]) if operation in m.capabilities else "" for _, m in columns
        ]
        rows.append([f"{operation}: required", *(text or "none" for text in required)])
    return [header, *rows]


def _cell(vendor_map: VendorMap, operation: str, field: str) -> str:
    capabilities = vendor_map.capabilities.get(operation)
    if capabilities is None:
        return NOT_OFFERED
    if field in capabilities["native"]:
        return NATIVE
    plan = vendor_map.operations[operation].fields
    steps = {field_text(path): step for path, step in plan.composed.items()} if plan else {}
    return f"+ {steps[field]}" if field in steps else UNSUPPORTED


def document(config: Config, render: Callable[[list[list[str]]], str]) -> str:
    """Both tables and the legend, as ``gateway capabilities`` prints them."""
    columns = vendors(config)
    return f"{render(operation_rows(columns))}\n\n{render(field_rows(columns))}\n\n{LEGEND}"


def markdown(rows: list[list[str]]) -> str:
    cells = [[f"`{row[0]}`", *row[1:]] for row in rows[1:]]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )
