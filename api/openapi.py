"""OpenAPI links: how the id in a created resource feeds the routes that read, change or delete it, so clients
(and schemathesis's stateful phase) can follow them."""

from __future__ import annotations

from typing import Any


def created_links(parameter: str, *operation_ids: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry for a 201 whose body's ``id`` is the path ``parameter`` of ``operation_ids``."""
    links = {op: {"operationId": op, "parameters": {parameter: "$response.body#/id"}} for op in operation_ids}
    return {201: {"description": "Created", "links": links}}
