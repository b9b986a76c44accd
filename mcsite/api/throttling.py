"""DRF's rate limits keyed on the site's one client-address rule
(mcsite.client_ip) instead of DRF's own, which believes any X-Forwarded-For
a client sends unless NUM_PROXIES is set — a new made-up header per request
would be a new identity, and the limit would never bite."""

from rest_framework import throttling

from mcsite.client_ip import client_ip


class ClientAddressIdent:
    def get_ident(self, request):
        return client_ip(request) or ""


class AnonRateThrottle(ClientAddressIdent, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(ClientAddressIdent, throttling.UserRateThrottle):
    pass
