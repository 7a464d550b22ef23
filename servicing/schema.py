"""OpenAPI post-processing: every operation documents the error answers it can give, so clients (and
the schemathesis test, tests/cases/test_api_schema.py) see no status code the schema does not list."""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "description": "`detail` for request-wide errors; one list of messages per field for invalid input.",
    "properties": {"detail": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}},
    "additionalProperties": True,
}
ERRORS = {
    "400": "Invalid input (body, query parameter or filter value).",
    "401": "Credentials missing or invalid.",
    "403": "Not allowed for this user.",
    "404": "Not found, or not visible to this user (another lender's object); also a page past the end.",
    "415": "Request body in a media type the operation does not accept, or not parseable as one.",
}


def _needs(op: dict) -> set[str]:
    params = op.get("parameters", [])
    codes = {"401", "403"}  # every API operation requires a signed-in user
    if any(p["in"] == "path" for p in params) or any(p["name"] == "page" for p in params):
        codes.add("404")
    if op.get("requestBody") or any(p["in"] == "query" and p["name"] != "page" for p in params):
        codes.add("400")
    if op.get("requestBody"):
        codes.add("415")
    return codes


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for ops in result.get("paths", {}).values():
        for method, op in ops.items():
            if method == "parameters" or not op.get("security"):
                continue
            for param in op.get("parameters", []):
                # The router admits digits only (cases/api/urls.py); say so as a type, not a string pattern.
                if param["in"] == "path" and param.get("schema", {}).get("pattern") == "^[0-9]+$":
                    param["schema"] = {"type": "integer", "minimum": 0}
            responses = op.setdefault("responses", {})
            for code in sorted(_needs(op)):
                responses.setdefault(code, {"description": ERRORS[code]})
            for code, response in responses.items():
                if code.startswith("4") and "content" not in response:
                    response["content"] = content  # errors are JSON (servicing/api.py, servicing/urls.py)
    return result
