"""msgspec Structs for the happy path of DynamoDB AttributeValue JSON.

The generated `decode_json` of each record type declares its image as a Struct whose fields
are these wrappers, so msgspec checks the structure and the type tags in C while it parses
(an attribute `{"S": "..."}` with one key, a string inside) and allocates no dict per
attribute. Whatever does not fit (a NULL attribute, an extra key, a wrong tag) fails the
decode, and the runtime falls back to the exact decoder, which names the field and the reason.

`gc=False`: the instances hold strings and lists only, never a cycle, so the collector need
not track them (tens of thousands per batch).
"""

from __future__ import annotations

from msgspec import Struct


class S(Struct, forbid_unknown_fields=True, gc=False):
    S: str


class N(Struct, forbid_unknown_fields=True, gc=False):
    N: str


class BOOL(Struct, forbid_unknown_fields=True, gc=False):
    BOOL: bool


class SS(Struct, forbid_unknown_fields=True, gc=False):
    SS: list[str]


class LS(Struct, forbid_unknown_fields=True, gc=False):
    """A list (`L`) whose elements are all strings."""

    L: list[S]


class TypeOf(Struct, gc=False):
    """Only the `type` attribute of an image: which decoder the image goes to."""

    type: S
