"""OpenAPI helpers: links (how the id in a created resource feeds the routes that read, change or delete it, so
clients and schemathesis's stateful phase can follow them), query parameters of a hand-validated route,
one-or-many request bodies, and the finishing touch on the whole document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def created_links(parameter: str, *operation_ids: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry for a 201 whose body's ``id`` is the path ``parameter`` of ``operation_ids``."""
    links = {op: {"operationId": op, "parameters": {parameter: "$response.body#/id"}} for op in operation_ids}
    return {201: {"description": "Created", "links": links}}


def query_parameters(model: type[BaseModel], security: str = "HTTPBearer") -> dict[str, Any]:
    """``openapi_extra`` documenting ``model``'s fields as query parameters and the bearer key, for a route that
    validates its query string itself (see ``api.routes.serving``): the model stays the one declaration."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    parameters = []
    for name, field in schema["properties"].items():
        description = field.pop("description", None)
        parameter = {"name": name, "in": "query", "required": name in required, "schema": field}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return {"parameters": parameters, "security": [{security: []}]}


def one_or_many(key: str, most: int, one: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` for a body that is one row (``one``) or ``{key: [rows]}`` with at most ``most``: the
    rows are judged one by one by the domain, so the schema only says the shape."""
    many = {"type": "object", "required": [key], "properties": {key: {"type": "array", "maxItems": most, "items": {}}}}
    schema = {"oneOf": [many, {"type": "object", **one}]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def hoist_variants(document: dict[str, Any]) -> dict[str, Any]:
    """Each titled ``oneOf`` variant of a component becomes a component of that title, referred to by ``$ref``:
    client generators name and import variants by their component (one inline variant left a generated client
    importing a module it never wrote)."""
    schemas = document.get("components", {}).get("schemas", {})
    for schema in list(schemas.values()):
        for i, variant in enumerate(schema.get("oneOf", [])):
            title = variant.get("title")
            if title and "$ref" not in variant and title not in schemas:
                schemas[title] = variant
                schema["oneOf"][i] = {"$ref": f"#/components/schemas/{title}"}
    return document
