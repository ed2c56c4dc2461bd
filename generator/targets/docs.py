"""Docs target: a data dictionary of every record type and field."""

from __future__ import annotations

from ..added import ADDED
from ..kinds import TIMESTAMP_KINDS
from ..model import Field, Kind, Model
from ..templating import header, render

TEMPLATE = "docs/data-dictionary.md.j2"


def describe_type(f: Field) -> str:
    t = f.type
    match t.kind:
        case Kind.ENUM:
            return "enum: " + ", ".join(f"`{s}`" for s in t.symbols)
        case Kind.DECIMAL:
            return f"decimal({t.precision},{t.scale})"
        case Kind.ARRAY:
            assert t.items is not None
            return f"array of {t.items.kind.value}" + (" (string set)" if f.wire_set else "")
        case Kind.RECORD:
            return f"record `{t.name}`"
        case Kind.INT | Kind.LONG if f.minimum is not None or f.maximum is not None:
            return f"{t.kind.value} ({f.minimum}..{f.maximum})"
        case k if k in TIMESTAMP_KINDS:
            return f"timestamp ({'ms' if k is Kind.TIMESTAMP_MILLIS else 'µs'}, UTC)"
    return t.kind.value


def origin(f: Field) -> str:
    if f.from_image:
        return "DynamoDB image"
    return ADDED[f.origin].doc + (f" `{f.argument}`" if f.argument else "")


def cell(text: str) -> str:
    """Text as one Markdown table cell: a newline would end the row, a pipe the cell."""
    return " ".join(text.split()).replace("|", "\\|")


def render_docs(model: Model) -> dict[str, str]:
    types = [
        {
            "rt": rt,
            "doc": " ".join(rt.doc.split()),
            "partition": " else ".join(f"`{p}`" for p in rt.partition_paths)
            + (" else the processing time" if rt.partition_fallback else ""),
            "fields": [
                {
                    "path": f.path,
                    "type": describe_type(f),
                    "required": "optional" if f.optional else "required",
                    "pii": "PII" if f.pii else "",
                    "origin": origin(f),
                    "doc": cell(f.doc),
                }
                for f in rt.walk()
            ],
        }
        for rt in model.types
    ]
    text = render(TEMPLATE, header=header("<!--", model.types, [TEMPLATE]).replace("\n", " -->\n"), types=types)
    return {"docs/data-dictionary.md": text}
