"""A URLconf with a view that crashes, to see the 500 page a person gets."""

from django.urls import include, path


def crash(request):
    raise RuntimeError("boom: a secret stack trace detail")


urlpatterns = [path("boom/", crash), path("", include("mcsite.urls"))]
