from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.routers import SimpleRouter

from backups.api.alerts import AlertPreferencesView
from backups.api import targets as targets_api
from backups.prometheus import metrics_view
from mcsite.api.auth import TokenView
from mcsite.api.tokens import TokenRotateView
from servers.api import NodeCallView, NodeListView, ServerViewSet
from servers.health import healthz

router = SimpleRouter()
router.trailing_slash = "/?"  # paths work with and without the trailing slash
router.register("servers", ServerViewSet, basename="server")

api_patterns = [
    re_path(r"^auth/token/?$", TokenView.as_view(), name="api-token"),
    re_path(r"^auth/token/rotate/?$", TokenRotateView.as_view(), name="api-token-rotate"),
    # The schema and its docs are public, like any published API description.
    re_path(r"^schema/?$", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="api-schema"),
    re_path(r"^docs/?$", SpectacularSwaggerView.as_view(url_name="api-schema", permission_classes=[AllowAny]),
            name="api-docs"),
    path("backups/", include("backups.api.urls")),
    re_path(r"^alerts/preferences/?$", AlertPreferencesView.as_view(), name="api-alert-preferences"),
    re_path(r"^storage-targets/?$", targets_api.StorageTargetListView.as_view(), name="api-storage-targets"),
    re_path(r"^storage-targets/(?P<target_id>[0-9]+)/?$", targets_api.StorageTargetDetailView.as_view(),
            name="api-storage-target"),
    re_path(r"^storage-targets/(?P<target_id>[0-9]+)/test/?$", targets_api.StorageTargetTestView.as_view(),
            name="api-storage-target-test"),
    re_path(r"^nodes/?$", NodeListView.as_view(), name="api-nodes"),
    re_path(r"^node-calls/(?P<call_id>[0-9]+)/?$", NodeCallView.as_view(), name="api-node-call"),
    path("", include(router.urls)),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("metrics", metrics_view, name="metrics"),
    path("healthz", healthz, name="healthz"),
    path("", include("mcsite.web_urls")),
    path("", RedirectView.as_view(url="/servers/", permanent=False)),
]

# The admin says whose it is (templates/admin/base_site.html adds the styles).
admin.site.site_header = "mcsite administration"
admin.site.site_title = "mcsite administration"
admin.site.index_title = "mcsite administration"
