"""The site's URLs: the two apps' pages, the admin, the REST API under /api/ and its schema and docs."""

from django.contrib import admin
from django.http import JsonResponse
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from annotate.api import urls as annotate_api
from training.api import urls as training_api

# One "api" namespace over both apps' routes (api:training-run-list …): two includes of the
# same namespace would leave one of them unreachable by reverse().
api = ([*annotate_api.urlpatterns, *training_api.urlpatterns], "api")


@csrf_exempt  # a 404 whatever the method: no CSRF page (HTML) in its place
def api_not_found(request, path=""):
    """A JSON 404 for any path under /api/ that no route takes, whatever DEBUG says (Django's own
    404 page is HTML, and with DEBUG on its technical page, which a client cannot parse)."""
    return JsonResponse({"detail": f"No API endpoint at {request.path}."}, status=404)


urlpatterns = [
    path("", include("annotate.urls")),
    path("", include("training.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/", include(api)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up code as a script file of its own, not inline:
    # the Content-Security-Policy allows no inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api_docs.html"),
        name="api-docs",
    ),
    # [\s\S] and \Z: a path with a newline in it is under /api/ too.
    re_path(r"^api/(?P<path>[\s\S]*)\Z", api_not_found),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's, the API docs).
    path("favicon.ico", RedirectView.as_view(url=static("annotate/favicon.svg"), permanent=True)),
]
