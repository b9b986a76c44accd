"""OpenAPI: every success body is documented inside the envelope and every
operation documents the error envelope (SPEC §10)."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from mcsite.errors import ErrorCode

ErrorEnvelopeSerializer = inline_serializer(
    name="ErrorEnvelope",
    fields={
        "success": serializers.BooleanField(default=False),
        "error": serializers.CharField(help_text="A message a person can read"),
        "code": serializers.ChoiceField(choices=[c.value for c in ErrorCode]),
        "details": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()), required=False,
            help_text="Per-field messages for VALIDATION_ERROR",
        ),
    },
)

_DESCRIPTIONS = {
    400: "Invalid input (VALIDATION_ERROR, INVALID_DIRECTORY)",
    401: "No or bad credentials (AUTHENTICATION_REQUIRED)",
    403: "Not allowed (PERMISSION_DENIED)",
    404: "Not found, or not yours (NOT_FOUND, BACKUP_NOT_FOUND, SCHEDULE_NOT_FOUND)",
    405: "Method not allowed (METHOD_NOT_ALLOWED)",
    409: "Conflict (SCHEDULE_EXISTS, BACKUP_IN_PROGRESS, RESTORE_IN_PROGRESS, BACKUP_CORRUPTED, "
    "SERVER_DIRECTORY_NOT_FOUND, DECRYPTION_FAILED)",
    415: "Unsupported media type: send application/json (VALIDATION_ERROR)",
    429: "Too many requests (THROTTLED)",
    500: "Internal error (INTERNAL_ERROR)",
    503: "The server's game host is not reporting (NODE_DOWN)",
    507: "Insufficient disk space (INSUFFICIENT_DISK_SPACE)",
}
_ALWAYS = (400, 401, 404, 405, 415, 429, 500)


def envelope_errors(*codes: int) -> dict:
    return {code: OpenApiResponse(ErrorEnvelopeSerializer, description=_DESCRIPTIONS[code]) for code in codes}


def _wrap(schema):
    return {
        "type": "object",
        "required": ["success", "message", "data"],
        "properties": {
            "success": {"type": "boolean"},
            "message": {"type": "string"},
            "data": schema if schema is not None else {"nullable": True},
        },
    }


def envelope_postprocessing_hook(result, generator, request, public):
    error_ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for code, response in list(responses.items()):
                if not str(code).startswith("2"):
                    continue
                content = response.setdefault("content", {})
                media = content.setdefault("application/json", {})
                schema = media.get("schema")
                if schema and "$ref" in schema and schema["$ref"].split("/")[-1].startswith("Paginated"):
                    continue
                if schema and schema.get("properties", {}).get("success"):
                    continue
                if "application/octet-stream" in content and len(content) > 1 and schema is None:
                    del content["application/json"]
                    continue
                media["schema"] = _wrap(schema)
            for code in _ALWAYS:
                if str(code) not in responses:
                    responses[str(code)] = {
                        "description": _DESCRIPTIONS[code],
                        "content": {"application/json": {"schema": error_ref}},
                    }
    return result
