from rest_framework.renderers import JSONRenderer


def is_envelope(data) -> bool:
    return isinstance(data, dict) and "success" in data and ("data" in data or "error" in data)


class EnvelopeJSONRenderer(JSONRenderer):
    """Wraps a view's plain data in {"success": true, "message", "data"} so
    views stay thin; errors arrive already enveloped by the handler."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code < 400 and not is_envelope(data):
            data = {"success": True, "message": getattr(response, "message", "OK"), "data": data}
        return super().render(data, accepted_media_type, renderer_context)


from rest_framework.metadata import SimpleMetadata  # noqa: E402


class DescriptionOnlyMetadata(SimpleMetadata):
    """OPTIONS answers with the view's name, description and media types.
    DRF's default also describes PUT/POST bodies by calling get_object(),
    which views that look objects up themselves do not support."""

    def determine_actions(self, request, view):
        return {}
