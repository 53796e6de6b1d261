"""The OpenAPI 3.0 description served at GET /openapi.json."""

from __future__ import annotations

from typing import Any

from hashlookup import algorithms
from hashlookup._version import __version__
from hashlookup.server import _pdq
from hashlookup.server._pdq_openapi import pdq_paths, pdq_schemas


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def _error(text: str) -> dict[str, Any]:
    return _json(_ref("Error"), text)


# the answers of an authenticated endpoint besides its own: keys, the rate
# limit, and the connection limits of every request (SERVER.md, Deadlines
# and connection limits)
_AUTH_ERRORS = {
    "401": _error("no API key, or an unknown one"),
    "403": _error("the API key was revoked"),
    "408": _error("the request's head or body did not arrive before its deadline"),
    "429": {
        **_error(
            "rate limit exceeded, or too many connections or too much upload "
            "memory from this client address; retry after Retry-After seconds"
        ),
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
    "503": _error("this worker is at its connection or upload memory limit"),
}


def _lookup_path(alg: str) -> dict[str, Any]:
    display = algorithms.DISPLAY[alg]
    hex_length = algorithms.BY_NAME[alg].hex_length
    return {
        "get": {
            "operationId": f"lookup_{alg}",
            "summary": f"Look up one {display} digest (CIRCL hashlookup compatible)",
            "tags": ["CIRCL compatible"],
            "parameters": [
                {
                    "name": "digest",
                    "in": "path",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "pattern": f"^[0-9a-fA-F]{{{hex_length}}}$",
                    },
                    "description": f"{hex_length} hex characters, any case",
                }
            ],
            "responses": {
                "200": _json(_ref("CirclRecord"), "the record of the digest"),
                "400": _error(f"not a {display} digest"),
                "404": _json(_ref("Error"), "not in the dataset (message and query)"),
                **_AUTH_ERRORS,
            },
        }
    }


def _bulk_path(alg: str) -> dict[str, Any]:
    display = algorithms.DISPLAY[alg]
    return {
        "post": {
            "operationId": f"bulk_{alg}",
            "summary": f"Look up many {display} digests; the records of the hits "
            "in input order (CIRCL hashlookup compatible)",
            "tags": ["CIRCL compatible"],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("Hashes")}},
            },
            "responses": {
                "200": _json(
                    {"type": "array", "items": _ref("CirclRecord")},
                    "records of the digests found; misses and invalid "
                    "items are left out",
                ),
                "400": _error("malformed JSON or no 'hashes' array"),
                "413": _error("body or batch too large"),
                "415": _error("not application/json"),
                **_AUTH_ERRORS,
            },
        }
    }


def openapi(max_batch: int, max_body: int) -> dict[str, Any]:
    """The OpenAPI document for these limits."""
    # Items are not constrained: a bad item is a per-item "invalid" result
    # (/v1/check) or skipped (/bulk, as CIRCL's server does); more than
    # max_batch items get 413.
    hashes = {
        "type": "object",
        "required": ["hashes"],
        "properties": {
            "hashes": {
                "type": "array",
                "items": {},
                "description": f"hex digests, at most {max_batch}",
            }
        },
    }
    record_props = {
        "MD5": {"type": "string"},
        "SHA-1": {"type": "string"},
        "SHA-256": {"type": "string"},
        "FileSize": {"type": "string"},
        "hashlookup:labels": {"type": "array", "items": {"type": "string"}},
        "hashlookup:dataset": {"type": "string"},
        "hashlookup:generation": {"type": "integer"},
        "hashlookup:built": {"type": "string"},
        # record attributes (datasets that keep them, e.g. NSRL's): strings
        # under their names; single lookups expand the two codes below into
        # the NSRL table rows they name (docs/SERVER.md)
        "FileName": {"type": "string"},
        "CRC32": {"type": "string"},
        "SpecialCode": {"type": "string"},
        **{
            code: {
                "oneOf": [
                    {"type": "string"},
                    {"type": "object", "additionalProperties": {"type": "string"}},
                ]
            }
            for code in ("ProductCode", "OpSystemCode")
        },
        "hashlookup:trust": {"type": "integer", "minimum": 0, "maximum": 100},
    }
    nullable_str = {"type": "string", "nullable": True}
    item = {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["hit", "miss", "invalid"]},
            "algorithm": {"type": "string", "enum": list(algorithms.NAMES)},
            "record": {"type": "integer"},
            **dict.fromkeys(algorithms.NAMES, nullable_str),
            "size": {"type": "integer", "nullable": True},
            "labels": {"type": "array", "items": {"type": "string"}},
            "reason": {"type": "string"},
        },
    }
    check = {
        "type": "object",
        "required": [
            "dataset",
            "generation",
            "count",
            "hits",
            "misses",
            "invalid",
            "results",
        ],
        "properties": {
            "dataset": {"type": "string"},
            "generation": {"type": "integer"},
            "count": {"type": "integer"},
            "hits": {"type": "integer"},
            "misses": {"type": "integer"},
            "invalid": {"type": "integer"},
            "results": {"type": "array", "items": _ref("CheckItem")},
        },
    }
    info = {
        "type": "object",
        "required": ["dataset", "generation", "built", "records", "items"],
        "properties": {
            "hashlookup-version": {"type": "string"},
            "dataset": {"type": "string"},
            "generation": {"type": "integer"},
            "built": {"type": "string"},
            "records": {"type": "integer"},
            "items": {"type": "object", "additionalProperties": {"type": "integer"}},
            "labels": {"type": "object", "additionalProperties": {"type": "integer"}},
            "nsrl-version": {"type": "string", "nullable": True},
        },
    }
    plain = {
        "description": "ok",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "hashlookup lookup service",
            "version": __version__,
            "description": "CIRCL hashlookup compatible endpoints plus a "
            "native batch API. See docs/SERVER.md.",
        },
        "security": [{"bearer": []}],
        "paths": {
            **{f"/lookup/{a}/{{digest}}": _lookup_path(a) for a in algorithms.NAMES},
            "/bulk/md5": _bulk_path("md5"),
            "/bulk/sha1": _bulk_path("sha1"),
            "/bulk/sha256": _bulk_path("sha256"),
            "/info": {
                "get": {
                    "operationId": "info",
                    "summary": "Dataset facts",
                    "tags": ["CIRCL compatible"],
                    "responses": {"200": _json(info, "dataset facts"), **_AUTH_ERRORS},
                }
            },
            "/stats/top": {
                "get": {
                    "operationId": "stats_top",
                    "summary": "CIRCL's most-queried digests: always empty lists "
                    "(hashlookup never records queries)",
                    "tags": ["CIRCL compatible"],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["nx", "exist"],
                                "properties": {
                                    "nx": {"type": "array", "maxItems": 0},
                                    "exist": {"type": "array", "maxItems": 0},
                                },
                            },
                            "empty lists",
                        ),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/v1/check": {
                "post": {
                    "operationId": "check",
                    "summary": f"Check up to {max_batch} digests of any algorithm; "
                    "per-item results in input order",
                    "tags": ["native"],
                    "parameters": [
                        {
                            "name": "algorithm",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "string",
                                "enum": list(algorithms.NAMES),
                            },
                            "description": "required with application/octet-stream "
                            "(the width of the raw digests); with JSON or text "
                            "it restricts the items to that algorithm",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": hashes},
                            "text/plain": {"schema": {"type": "string"}},
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    "responses": {
                        "200": _json(check, "per-item results"),
                        "400": _error("malformed body or missing algorithm"),
                        "413": _error(
                            f"body over {max_body} bytes or more than {max_batch} items"
                        ),
                        "415": _error("unsupported content type"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            **pdq_paths(
                min(max_batch, _pdq.MAX_ITEMS),
                _pdq.MAX_ITEMS_WIDE,
                max_body,
                _AUTH_ERRORS,
            ),
            "/v1/bloom/{algorithm}": {
                "get": {
                    "operationId": "bloom",
                    "summary": "DCSO bloom v1 filter of one key table, with ETag",
                    "tags": ["native"],
                    "parameters": [
                        {
                            "name": "algorithm",
                            "in": "path",
                            "required": True,
                            "schema": {
                                "type": "string",
                                "enum": list(algorithms.NAMES),
                            },
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "the filter",
                            "content": {
                                "application/octet-stream": {
                                    "schema": {"type": "string", "format": "binary"}
                                }
                            },
                        },
                        "304": {"description": "unchanged (If-None-Match)"},
                        "404": _error("unknown algorithm or no such table"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/v1/ping": {
                "get": {
                    "operationId": "ping",
                    "tags": ["native"],
                    "summary": "A constant answer (authenticated; for load tests)",
                    "responses": {"200": plain, **_AUTH_ERRORS},
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "tags": ["operations"],
                    "security": [],
                    "summary": "Liveness",
                    "responses": {"200": plain},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "tags": ["operations"],
                    "security": [],
                    "summary": "Readiness: dataset present, readable, not too old",
                    "responses": {
                        "200": plain,
                        "503": _json({"type": "object"}, "not ready"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "tags": ["operations"],
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "text exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_AUTH_ERRORS,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "message": {"type": "string"},
                        "query": {"type": "string"},
                    },
                },
                "Hashes": hashes,
                "CirclRecord": {"type": "object", "properties": record_props},
                "CheckItem": item,
                **pdq_schemas(
                    min(max_batch, _pdq.MAX_ITEMS), _pdq.MAX_DISTANCE, _pdq.MAX_MATCHES
                ),
            },
        },
    }
