from rest_framework.response import Response


def respond(data, *, message: str = "OK", status_code: int = 200) -> Response:
    """A success response; the renderer wraps `data` in the envelope with `message`."""
    response = Response(data, status=status_code)
    response.message = message
    return response
