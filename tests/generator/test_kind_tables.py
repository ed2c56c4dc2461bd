"""The kind tables: one row per scalar kind for the Python target, and the runtime's FieldKind,
the same kinds as the generator's Kind."""

from __future__ import annotations

import inspect

import pytest

from dmd.generated import REGISTRY
from dmd.generator.kinds import Kind
from dmd.generator.targets.python_kinds import SCALARS
from dmd.support import wire
from dmd.support.records import FieldInfo, FieldKind


def test_every_scalar_kind_has_one_row():
    assert set(SCALARS) == set(Kind) - {Kind.ARRAY, Kind.RECORD}


@pytest.mark.parametrize("kind", sorted(SCALARS))
def test_each_row_names_a_wire_helper_and_its_arguments(kind):
    row = SCALARS[kind]
    helper = getattr(wire, row.helper.removeprefix("w."))
    params = list(inspect.signature(helper).parameters)
    assert params == ["av", "path", "problems", "required", *row.args]


def test_the_runtime_field_kinds_are_the_generator_kinds():
    assert Kind is FieldKind


def test_generated_fields_carry_field_kinds():
    for spec in REGISTRY.values():
        for f in spec.fields:
            assert type(f.kind) is FieldKind, f.path
            assert (f.item_kind is not None) is (f.kind is FieldKind.ARRAY), f.path
            assert f.item_kind is None or type(f.item_kind) is FieldKind, f.path


def test_a_field_kind_compares_equal_to_its_text():
    f = FieldInfo("date.created", "timestamp-millis", False, "image", item_kind="")
    assert f.kind is FieldKind.TIMESTAMP_MILLIS
    assert f.kind == "timestamp-millis" and f.kind.startswith("timestamp")
    assert f.item_kind is None
    assert FieldInfo("tags", "array", False, "image", item_kind="string").item_kind is FieldKind.STRING
    with pytest.raises(ValueError):
        FieldInfo("x", "float", False, "image")
