from django.conf import settings


def site(request):
    return {"MCSITE_TIME_ZONE": settings.MCSITE_TIME_ZONE}
