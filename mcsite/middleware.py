
import logging

from django.http import JsonResponse

from mcsite.errors import ErrorCode

logger = logging.getLogger("mcsite.api")

_STATUS_CODES = {
    400: ErrorCode.VALIDATION_ERROR,
    401: ErrorCode.AUTHENTICATION_REQUIRED,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    429: ErrorCode.THROTTLED,
}
_MESSAGES = {404: "Not found", 405: "Method not allowed", 403: "Permission denied", 400: "Bad request"}


def _is_api(request) -> bool:
    return request.path.startswith("/api/") or request.path == "/api"


class ApiErrorMiddleware:
    """Errors raised outside DRF (an unknown /api/ path, CSRF failures, a crash
    in middleware) still answer in the JSON envelope, never an HTML page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not _is_api(request) or response.status_code < 400:
            return response
        content_type = response.get("Content-Type", "")
        if content_type.startswith("application/json"):
            return response
        status = response.status_code
        code = _STATUS_CODES.get(status, ErrorCode.INTERNAL_ERROR if status >= 500 else ErrorCode.VALIDATION_ERROR)
        message = _MESSAGES.get(status, "Internal server error" if status >= 500 else "Request failed")
        if status == 403 and b"CSRF" in getattr(response, "content", b""):
            message = "CSRF check failed: send the X-CSRFToken header with session authentication, or use a token"
        body = {"success": False, "error": message, "code": code.value}
        new = JsonResponse(body, status=status)
        for header in ("Allow", "Retry-After"):
            if header in response:
                new[header] = response[header]
        return new

    def process_exception(self, request, exception):
        if not _is_api(request):
            return None
        logger.exception("api_internal_error path=%s", request.path, exc_info=exception)
        return JsonResponse(
            {"success": False, "error": "Internal server error", "code": ErrorCode.INTERNAL_ERROR.value},
            status=500,
        )



