"""Boolean targeting (``targeting.expr``): a tree of ``all`` / ``any`` / ``not`` over tests of what the app sent
about the device, for what the flat criteria cannot say ("under 25, or a student": ``any``; "not on iOS": ``not``).

A test is ``{"attr", "op", "value"}``: ``age`` with ``between`` ``[low, high]``, ``gte`` or ``lte`` a number;
``gender``, ``os``, ``language`` or ``interests`` with ``in`` a list (``interests``: any of the device's;
``language``: on the primary tag); any attribute with ``present``. A test of an attribute the app did not send
is false, so ``not`` of it is true: "not on iOS" also takes a device that sent no ``os`` (add ``present`` when
that matters). ``{"audience": id}`` holds for a member of one of the merchant's audiences (its live generation:
a suppressed or never refreshed audience has no members); what the app sent is decided first, and what is left
over audiences is checked in the cap reservation with the device's memberships, in the same Redis call. Trees are
at most 8 deep and 100 nodes: they are evaluated on every request that meets them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationInfo, field_validator

Attribute = Literal["age", "gender", "interests", "os", "language"]
Op = Literal["in", "between", "gte", "lte", "present"]
MAX_DEPTH = 8
MAX_NODES = 100
_AGE_OPS = {"between", "gte", "lte", "present"}


class Test(BaseModel):
    """Checked field by field, so an error names the field to change (``…any[1].value``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    attr: Attribute
    op: Op
    value: tuple[str, ...] | tuple[int, int] | int | None = Field(default=None, validate_default=True)

    @field_validator("op")
    @classmethod
    def _op_fits(cls, op: str, info: ValidationInfo) -> str:
        attr = info.data.get("attr")
        if attr == "age" and op not in _AGE_OPS:
            raise ValueError("age is tested with between, gte, lte or present")
        if attr not in (None, "age") and op not in ("in", "present"):
            raise ValueError(f"{attr} is tested with in or present")
        return op

    @field_validator("value", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            return tuple(dict.fromkeys(v.strip().lower().replace("_", "-") for v in value))
        return value

    @field_validator("value")
    @classmethod
    def _value_fits(cls, value: Any, info: ValidationInfo) -> Any:
        op, attr = info.data.get("op"), info.data.get("attr")
        if op is None or attr is None:
            return value  # the op or the attribute is wrong already: that error is the one to read
        if op == "present":
            if value is not None:
                raise ValueError("present takes no value")
        elif op == "between":
            if not _ages(value):
                raise ValueError("between takes [low, high] ages with 0 ≤ low ≤ high ≤ 130")
        elif op in ("gte", "lte"):
            if not (isinstance(value, int) and 0 <= value <= 130):
                raise ValueError(f"{op} takes one age from 0 to 130")
        elif not (isinstance(value, tuple) and 1 <= len(value) <= 100 and isinstance(value[0], str)):
            raise ValueError("in takes a list of 1 to 100 words")
        return value


class InAudience(BaseModel):
    """A member of the merchant's audience ``audience`` (docs/audiences.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    audience: str = Field(min_length=1, max_length=64)


def _ages(value: Any) -> bool:
    if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value)):
        return False
    return bool(0 <= value[0] <= value[1] <= 130)


class AllOf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    all: tuple[Expr, ...] = Field(min_length=1, max_length=20)


class AnyOf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    any: tuple[Expr, ...] = Field(min_length=1, max_length=20)


class NotOf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)
    negated: Expr = Field(alias="not")


def _kind(value: Any) -> str:
    """Which node a value is; tags are named apart from the keys, so an error's path names keys only."""
    if isinstance(value, dict):
        found = next((f"{key}-of" for key in ("all", "any", "not") if key in value), None)
        return found or ("audience-of" if "audience" in value else "test")
    kinds: dict[type, str] = {AllOf: "all-of", AnyOf: "any-of", NotOf: "not-of", InAudience: "audience-of"}
    return kinds.get(type(value), "test")


Expr = Annotated[
    Annotated[AllOf, Tag("all-of")] | Annotated[AnyOf, Tag("any-of")] | Annotated[NotOf, Tag("not-of")]
    | Annotated[InAudience, Tag("audience-of")] | Annotated[Test, Tag("test")],
    Discriminator(_kind),
]  # fmt: skip

for _model in (AllOf, AnyOf, NotOf):
    _model.model_rebuild()


def children(expr: Expr) -> tuple[tuple[str, Expr], ...]:
    """A node's children, each with the path step that reaches it (``.any[1]``, ``.not``)."""
    if isinstance(expr, NotOf):
        return ((".not", expr.negated),)
    if isinstance(expr, AllOf | AnyOf):
        name = "all" if isinstance(expr, AllOf) else "any"
        return tuple((f".{name}[{i}]", child) for i, child in enumerate(getattr(expr, name)))
    return ()


def size(expr: Expr, depth: int = 1) -> tuple[int, int]:
    """(nodes, depth) of a tree."""
    counted = [size(child, depth + 1) for _, child in children(expr)]
    return 1 + sum(n for n, _ in counted), max((d for _, d in counted), default=depth)


def audiences(expr: Expr | None, path: str = "") -> tuple[tuple[str, str], ...]:
    """Every audience the tree tests, with the path of its field (``.any[0].audience``), in order."""
    if expr is None:
        return ()
    if isinstance(expr, InAudience):
        return ((f"{path}.audience", expr.audience),)
    return tuple(found for step, child in children(expr) for found in audiences(child, path + step))


def check_size(expr: Expr | None) -> Expr | None:
    if expr is not None:
        nodes, depth = size(expr)
        if nodes > MAX_NODES or depth > MAX_DEPTH:
            raise ValueError(f"an expression has at most {MAX_NODES} nodes and {MAX_DEPTH} levels")
    return expr
