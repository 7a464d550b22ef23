"""The app's URLs plus the bench baseline: a trivial authenticated DRF endpoint that inserts one row."""

from django.db import connection
from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView


class Ping(APIView):
    """Same authentication, permission and request handling as the outreach API; one INSERT."""

    def post(self, request):
        with connection.cursor() as cur:
            cur.execute("INSERT INTO bench_ping (user_id, at) VALUES (%s, now())", [request.user.pk])
        return Response({"ok": True}, status=201)


urlpatterns = [
    path("bench/ping/", Ping.as_view()),
    path("", include("servicing.urls")),
]
