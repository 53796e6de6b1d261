"""The OpenAPI description of the PDQ endpoints (server/_pdq.py): POST
/v1/pdq and HMA's GET /m/raw_lookup and /m/lookup, merged into the service's
document by server/_openapi.py."""

from __future__ import annotations

from typing import Any

from hashlookup.near._defaults import DEFAULT_MAX_DISTANCE, DEFAULT_MIN_QUALITY

#: include_distance values read as booleans (HMA reads them with pydantic;
#: Python clients send True / False)
BOOLEANS = ("true", "false", "True", "False", "1", "0", "yes", "no", "on", "off")
TRUE = ("true", "True", "1", "yes", "on")
_PDQ_PATTERN = "^[0-9a-fA-F]{64}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def _error(text: str) -> dict[str, Any]:
    return _json(_ref("Error"), text)


def pdq_schemas(
    max_items: int, max_distance: int, max_matches: int
) -> dict[str, dict[str, Any]]:
    """The components/schemas entries of the PDQ endpoints."""
    nullable_str = {"type": "string", "nullable": True}
    match = {
        "type": "object",
        "required": ["record", "distance", "pdq", "quality", "labels"],
        "properties": {
            "record": {"type": "integer"},
            "distance": {"type": "integer"},
            "pdq": {"type": "string"},
            "quality": {"type": "integer"},
            "md5": nullable_str,
            "sha1": nullable_str,
            "sha256": nullable_str,
            "size": {"type": "integer", "nullable": True},
            "labels": {"type": "array", "items": {"type": "string"}},
        },
    }
    hma_match = {
        "type": "object",
        "required": ["bank_content_id", "distance"],
        "properties": {
            "bank_content_id": {"type": "integer"},
            "distance": {"type": "string"},
        },
    }
    return {
        "PdqRequest": {
            "type": "object",
            "required": ["hashes"],
            "additionalProperties": False,
            "properties": {
                "hashes": {
                    "type": "array",
                    "items": {"type": "string", "pattern": _PDQ_PATTERN},
                    "description": "PDQ hashes, 64 hex characters each (any "
                    f"case), at most {max_items}",
                },
                "max_distance": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": max_distance,
                    "default": DEFAULT_MAX_DISTANCE,
                },
                "min_quality": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 100,
                    "default": DEFAULT_MIN_QUALITY,
                },
                "max_matches": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": max_matches,
                    "default": 100,
                },
            },
        },
        "PdqMatch": match,
        "PdqAnswer": {
            "type": "object",
            "required": [
                "dataset",
                "generation",
                "count",
                "max_distance",
                "min_quality",
                "matched",
                "matches",
                "truncated",
                "results",
            ],
            "properties": {
                "dataset": {"type": "string"},
                "generation": {"type": "integer"},
                "count": {"type": "integer"},
                "max_distance": {"type": "integer"},
                "min_quality": {"type": "integer"},
                "matched": {"type": "integer"},
                "matches": {"type": "integer"},
                "truncated": {"type": "integer"},
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["matches", "truncated"],
                        "properties": {
                            "matches": {"type": "array", "items": _ref("PdqMatch")},
                            "truncated": {"type": "boolean"},
                        },
                    },
                },
            },
        },
        "HmaMatch": hma_match,
    }


def pdq_paths(
    max_items: int,
    max_items_wide: int,
    max_body: int,
    auth_errors: dict[str, Any],
) -> dict[str, Any]:
    """The paths entries of the PDQ endpoints."""
    hma_params = [
        {
            "name": "signal_type",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "enum": ["pdq"]},
        },
        {
            "name": "signal",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "pattern": _PDQ_PATTERN},
            "description": "a PDQ hash, 64 hex characters",
        },
        {
            "name": "banks",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "comma-separated labels: only records carrying one",
        },
    ]
    hma_errors = {
        "400": _error(
            "a missing or malformed parameter, a signal type other than pdq, "
            "or a dataset without PDQ hashes"
        ),
        **auth_errors,
    }
    return {
        "/v1/pdq": {
            "post": {
                "operationId": "pdq",
                "summary": f"Near matches of up to {max_items} PDQ hashes; "
                "per-item matches in input order, nearest first",
                "tags": ["native"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("PdqRequest")}},
                },
                "responses": {
                    "200": _json(_ref("PdqAnswer"), "per-item matches"),
                    "400": _error("malformed JSON, or not a JSON object"),
                    "413": _error(
                        f"body over {max_body} bytes, more than {max_items} items, "
                        f"or more than {max_items_wide} with a max_distance above "
                        f"{DEFAULT_MAX_DISTANCE}"
                    ),
                    "415": _error("not application/json"),
                    "422": _error(
                        "a field or item that is not valid (named in 'field', "
                        "e.g. hashes[3])"
                    ),
                    "409": _error("the dataset has no PDQ hashes"),
                    **auth_errors,
                },
            }
        },
        "/m/raw_lookup": {
            "get": {
                "operationId": "hma_raw_lookup",
                "summary": "HMA compatible: the records within PDQ distance "
                f"{DEFAULT_MAX_DISTANCE} of one hash (quality >= "
                f"{DEFAULT_MIN_QUALITY})",
                "tags": ["HMA compatible"],
                "parameters": [
                    *hma_params,
                    {
                        "name": "include_distance",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": list(BOOLEANS)},
                        "description": "answer objects with the distance "
                        "instead of record ids",
                    },
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["matches"],
                            "properties": {
                                "matches": {
                                    "type": "array",
                                    "items": {
                                        "oneOf": [
                                            {"type": "integer"},
                                            _ref("HmaMatch"),
                                        ]
                                    },
                                }
                            },
                        },
                        "record ids (bank_content_id), nearest first",
                    ),
                    **hma_errors,
                },
            }
        },
        "/m/lookup": {
            "get": {
                "operationId": "hma_lookup",
                "summary": "HMA compatible: the matches of one PDQ hash by "
                "bank (label); a url parameter is refused with 403",
                "tags": ["HMA compatible"],
                "parameters": hma_params,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "additionalProperties": {
                                "type": "array",
                                "items": _ref("HmaMatch"),
                            },
                        },
                        "label -> matches of the records carrying it",
                    ),
                    **hma_errors,
                },
            }
        },
    }
