"""One exception handler renders every API error in the seed's envelope:
{"success": false, "error": "<message>", "code": "<CODE>"} (SPEC §10)."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

from mcsite.errors import DomainError, ErrorCode

logger = logging.getLogger("mcsite.api")


def error_body(code: ErrorCode, message: str, details=None) -> dict:
    body = {"success": False, "error": message, "code": ErrorCode(code).value}
    if details:
        body["details"] = details
    return body


def _flatten_details(detail) -> dict:
    """DRF's nested ValidationError detail as {field: [messages]}."""
    if isinstance(detail, dict):
        out = {}
        for field, value in detail.items():
            if isinstance(value, dict):
                for sub, msgs in _flatten_details(value).items():
                    out[f"{field}.{sub}"] = msgs
            elif isinstance(value, list):
                out[field] = [str(v) for v in value]
            else:
                out[field] = [str(value)]
        return out
    if isinstance(detail, list):
        return {"non_field_errors": [str(v) for v in detail]}
    return {"non_field_errors": [str(detail)]}


def _validation_message(details: dict) -> str:
    parts = []
    for field, messages in details.items():
        label = "" if field == "non_field_errors" else f"{field}: "
        parts.append(label + "; ".join(messages))
    return "Invalid input — " + " | ".join(parts) if parts else "Invalid input"


def api_exception_handler(exc, context):
    headers = {}
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, exceptions.ValidationError):
        details = _flatten_details(exc.detail)
        return Response(
            error_body(ErrorCode.VALIDATION_ERROR, _validation_message(details), details), status=400
        )
    if isinstance(exc, exceptions.ParseError):
        return Response(
            error_body(ErrorCode.VALIDATION_ERROR, f"Malformed request body: {exc.detail}"), status=400
        )
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return Response(error_body(ErrorCode.VALIDATION_ERROR, str(exc.detail)), status=415)
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        message = (
            "Authentication required" if isinstance(exc, exceptions.NotAuthenticated) else str(exc.detail)
        )
        return Response(error_body(ErrorCode.AUTHENTICATION_REQUIRED, message), status=401, headers=headers)
    if isinstance(exc, exceptions.PermissionDenied):
        message = "Permission denied"
        if str(exc.detail).startswith("CSRF Failed"):
            message = ("CSRF check failed: with session authentication send the X-CSRFToken header "
                       "(from the csrftoken cookie), or use an API token")
        return Response(error_body(ErrorCode.PERMISSION_DENIED, message), status=403)
    if isinstance(exc, exceptions.NotFound):
        return Response(error_body(ErrorCode.NOT_FOUND, "Not found"), status=404)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return Response(error_body(ErrorCode.METHOD_NOT_ALLOWED, str(exc.detail)), status=405)
    if isinstance(exc, exceptions.NotAcceptable):
        return Response(error_body(ErrorCode.VALIDATION_ERROR, str(exc.detail)), status=406)
    if isinstance(exc, exceptions.Throttled):
        if exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait) + 1)
        wait = f" Try again in {int(exc.wait) + 1} seconds." if exc.wait is not None else ""
        return Response(
            error_body(ErrorCode.THROTTLED, "Too many requests." + wait), status=429, headers=headers
        )
    if isinstance(exc, exceptions.APIException):
        return Response(error_body(ErrorCode.INTERNAL_ERROR, str(exc.detail)), status=exc.status_code)

    request = context.get("request")
    logger.exception("api_internal_error path=%s", getattr(request, "path", "?"), exc_info=exc)
    return Response(error_body(ErrorCode.INTERNAL_ERROR, "Internal server error"), status=500)
