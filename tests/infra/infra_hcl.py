"""Read the generated Terraform module back with python-hcl2, without its quoting."""

from __future__ import annotations

import json
import re
import textwrap
from functools import cache
from typing import Any

import hcl2
from infra_ddl import ROOT

TERRAFORM = ROOT / "generated" / "terraform"


def unquote(value: Any) -> Any:
    """A quoted HCL string literal as its text (python-hcl2 keeps the quotes); other values as they are."""
    if not isinstance(value, str):
        return value
    heredoc = re.fullmatch(r'"<<-?(\w+)\n(.*)\n\s*\1"', value, re.S)
    if heredoc:
        return textwrap.dedent(heredoc.group(2))
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return json.loads(value)
    return value


def normalize(node: Any) -> Any:
    """python-hcl2's tree without its quotes around labels, keys and strings, nor its markers."""
    if isinstance(node, dict):
        return {unquote(k): normalize(v) for k, v in node.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(node, list):
        return [normalize(v) for v in node]
    return unquote(node)


@cache
def module() -> dict[str, Any]:
    """Every block of every .tf file, merged the way Terraform reads a module."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as f:
            for key, blocks in normalize(hcl2.load(f)).items():
                merged.setdefault(key, []).extend(blocks)
    return merged


def resources(kind: str) -> dict[str, dict[str, Any]]:
    out = {}
    for block in module()["resource"]:
        for k, named in block.items():
            if k == kind:
                out.update(named)
    return out


def variables() -> dict[str, dict[str, Any]]:
    return {name: body for block in module()["variable"] for name, body in block.items()}


def locals_() -> dict[str, Any]:
    return {name: value for block in module().get("locals", []) for name, value in block.items()}


def policy_documents() -> dict[str, dict[str, Any]]:
    return {name: body for block in module()["data"] for name, body in block.get("aws_iam_policy_document", {}).items()}


def statements(document: str) -> dict[str, dict[str, Any]]:
    """The statements of a policy document by sid, dynamic ones (KMS keys passed in) included."""
    body = policy_documents()[document]
    out = {s["sid"]: s for s in body.get("statement", [])}
    for dynamic in body.get("dynamic", []):
        for content in dynamic["statement"]["content"]:
            out[content["sid"]] = content
    return out
