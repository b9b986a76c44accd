from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    """DRF's token, sent as `Authorization: Bearer <token>` (the seed's form)
    or `Authorization: Token <token>` (DRF's)."""

    keywords = ("Bearer", "Token")
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme = header.split(" ", 1)[0] if header else ""
        for keyword in self.keywords:
            if scheme.lower() == keyword.lower():
                self.keyword = keyword
                return super().authenticate(request)
        return None

    def authenticate_header(self, request):
        return "Bearer"
