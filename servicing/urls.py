from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.exceptions import NotFound, ParseError

from servicing.auth import ThrottledAuthenticationForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include("cases.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("reminders/", include("reminders.urls")),
    path("supervisor/scoring/", include("scoring.urls")),
    path("finance/", include("finance.urls")),
    path("supervisor/", include("supervision.urls")),
    path("", include("borrowers.urls")),
    path("", include("cases.urls")),
]


def handler404(request, exception):
    """API clients get JSON for a path that matches no route too (e.g. a non-numeric id), as documented."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": str(NotFound.default_detail)}, status=404)
    return defaults.page_not_found(request, exception)


def handler400(request, exception):
    """Requests Django refuses before any view (e.g. more than DATA_UPLOAD_MAX_NUMBER_FIELDS fields): JSON for the API."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": str(ParseError.default_detail)}, status=400)
    return defaults.bad_request(request, exception)
