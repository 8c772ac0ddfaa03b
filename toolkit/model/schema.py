"""The versioned JSON form of `PlatformState`, and its published JSON Schema.

Document shape: {"kind": "PlatformState", "schema_version": 1, "state": {...}}. Reading refuses a document of another
kind or schema version with a message that says what was found and what is expected, so a state file written by a
different toolkit release is never half-understood.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from toolkit.model.state import PlatformState

KIND = "PlatformState"
SCHEMA_VERSION = 1


class StateFileError(ValueError):
    """A state document that cannot be read: wrong kind, wrong version, or invalid content."""


@cache
def _adapter() -> TypeAdapter[PlatformState]:
    return TypeAdapter(PlatformState)


def to_document(state: PlatformState) -> dict[str, Any]:
    return {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "state": _adapter().dump_python(state, mode="json"),
    }


def dumps(state: PlatformState) -> str:
    return json.dumps(to_document(state), indent=2, sort_keys=False)


def from_document(doc: Any, source: str = "state document") -> PlatformState:
    if not isinstance(doc, dict):
        raise StateFileError(f"{source}: expected a JSON object with kind {KIND!r}; got {type(doc).__name__}")
    if doc.get("kind") != KIND:
        raise StateFileError(
            f"{source}: kind is {doc.get('kind')!r}, expected {KIND!r}; "
            "write one with `toolkit state dump --env NAME > state.json`"
        )
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise StateFileError(
            f"{source}: schema_version {doc.get('schema_version')!r} is not supported by this toolkit "
            f"(it reads version {SCHEMA_VERSION}); dump the state again with this toolkit's `toolkit state dump`"
        )
    try:
        return _adapter().validate_python(doc.get("state"))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:10])
        raise StateFileError(f"{source}: invalid state: {problems}") from None


def loads(text: str, source: str = "state document") -> PlatformState:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return from_document(doc, source)


def json_schema() -> dict[str, Any]:
    inner = _adapter().json_schema()
    defs = inner.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "toolkit PlatformState document",
        "type": "object",
        "required": ["kind", "schema_version", "state"],
        "additionalProperties": False,
        "properties": {
            "kind": {"const": KIND},
            "schema_version": {"const": SCHEMA_VERSION},
            "state": inner,
        },
        "$defs": defs,
    }
