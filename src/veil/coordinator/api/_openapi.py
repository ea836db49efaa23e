"""The OpenAPI 3.1 document of the client API (served at ``/api/v2/openapi.json``)."""

from __future__ import annotations

from typing import Any

__all__ = ["ENDPOINTS", "openapi_document"]

_B64 = {"type": "string", "contentEncoding": "base64"}
_MANIFEST_BODY = {
    "type": "object",
    "required": ["manifest"],
    "additionalProperties": False,
    "properties": {"manifest": _B64},
}
_UPDATE_RESULT = {
    "type": "object",
    "properties": {
        "applied": {"type": "boolean"},
        "kind": {"enum": ["security-version", "manifest"]},
        "fingerprint": {"type": "string"},
        "acknowledged": {"type": "array", "items": {"type": "string"}},
        "missingUsers": {"type": "array", "items": {"type": "string"}},
        "missingAcknowledgements": {"type": "integer"},
        "recoverySecrets": {"type": "object", "additionalProperties": _B64},
    },
}

#: (method, path, summary, who may call, request body schema, response data schema)
ENDPOINTS: list[tuple[str, str, str, str, dict[str, Any] | None, dict[str, Any]]] = [
    ("get", "/api/v2/status", "Coordinator state code and message.", "anyone", None,
     {"type": "object", "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}}),
    ("get", "/api/v2/manifest", "The manifest, its fingerprint and root signature.", "anyone",
     None, {"type": "object"}),
    ("post", "/api/v2/manifest", "Set the first manifest; returns encrypted recovery secrets.",
     "anyone, in state 2 only", _MANIFEST_BODY,
     {"type": "object", "properties": {"recoverySecrets": {"type": "object"}}}),
    ("get", "/api/v2/quote", "Evidence binding SHA-256(root certificate ‖ nonce), and the chain.",
     "anyone, in every state", None, {"type": "object"}),
    ("get", "/api/v2/secrets", "Read secrets (?s=NAME, repeated).", "users with ReadSecret",
     None, {"type": "object"}),
    ("post", "/api/v2/secrets", "Set user-defined secrets.", "users with WriteSecret",
     {"type": "object", "required": ["secrets"], "additionalProperties": False,
      "properties": {"secrets": {"type": "object", "additionalProperties": {
          "type": "object", "required": ["Key"], "properties": {"Key": _B64}}}}},
     {"type": "null"}),
    ("get", "/api/v2/update", "The hash-chained update log and its signed head.", "anyone", None,
     {"type": "object", "properties": {"updateLog": {"type": "array"}, "head": {"type": "object"}}}),
    ("post", "/api/v2/update", "Apply a security-version update or submit a full update.",
     "users with UpdateSecurityVersion / UpdateManifest", _MANIFEST_BODY, _UPDATE_RESULT),
    ("get", "/api/v2/update-manifest", "The pending full update and its missing users.",
     "anyone", None, {"type": "object"}),
    ("post", "/api/v2/update-manifest", "Acknowledge the pending update (same manifest).",
     "users with UpdateManifest", _MANIFEST_BODY, _UPDATE_RESULT),
    ("post", "/api/v2/update-cancel", "Cancel the pending update.", "users with UpdateManifest",
     {"type": "object", "additionalProperties": False}, {"type": "null"}),
    ("post", "/api/v2/recover", "Upload one signed recovery secret.",
     "recovery key holders, in state 1 only",
     {"type": "object", "required": ["recoverySecret", "recoverySecretSignature"],
      "additionalProperties": False,
      "properties": {"recoverySecret": _B64, "recoverySecretSignature": _B64}},
     {"type": "object", "properties": {"remaining": {"type": "integer"},
                                       "statusMessage": {"type": "string"}}}),
    ("get", "/api/v2/recover/public-key", "Ephemeral RSA key to encrypt recovery secrets to.",
     "anyone, in state 1 only", None,
     {"type": "object", "properties": {"publicKey": {"type": "string"}}}),
    ("get", "/api/v2/openapi.json", "This document.", "anyone", None, {"type": "object"}),
    ("get", "/healthz", "Liveness: the process answers.", "anyone", None, {"type": "object"}),
    ("get", "/readyz", "Readiness: 200 in states 2 and 3, 503 (JSend fail) otherwise.", "anyone",
     None, {"type": "object"}),
    ("get", "/metrics", "Prometheus text exposition (not JSend).", "anyone", None,
     {"type": "string"}),
    ("get", "/events", "Recent marble activation events.", "anyone", None,
     {"type": "object", "properties": {"events": {"type": "array"}}}),
]  # fmt: skip


def _jsend(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": ["success", "fail", "error"]},
            "data": data,
            "message": {"type": "string"},
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every client API endpoint."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, who, body, data in ENDPOINTS:
        operation: dict[str, Any] = {
            "summary": summary,
            "description": f"Who may call: {who}. Users authenticate with the TLS client "
            "certificate listed in the manifest. Errors are JSend fail (4xx) or error (5xx).",
            "responses": {
                "200": {
                    "description": "JSend success",
                    "content": {"application/json": {"schema": _jsend(data)}},
                },
                "default": {
                    "description": "JSend fail or error",
                    "content": {"application/json": {"schema": _jsend({})}},
                },
            },
        }
        if body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
        if path == "/api/v2/quote":
            operation["parameters"] = [
                {"name": "nonce", "in": "query", "schema": {"type": "string"},
                 "description": "base64url, at most 64 bytes"}
            ]  # fmt: skip
        if path == "/api/v2/secrets" and method == "get":
            operation["parameters"] = [
                {"name": "s", "in": "query", "required": True, "schema": {"type": "string"}}
            ]
        if path == "/api/v2/openapi.json":
            operation["responses"]["200"] = {
                "description": "The OpenAPI document itself (not JSend)",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        elif path == "/metrics":
            operation["responses"]["200"] = {
                "description": "Prometheus text exposition format 0.0.4 (not JSend)",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "veil coordinator client API",
            "version": "2",
            "description": "MarbleRun-compatible v2 client API with JSend envelopes. "
            "/healthz, /readyz, /metrics and /events are also served on --metrics-addr.",
        },
        "paths": paths,
    }
