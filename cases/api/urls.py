from rest_framework.routers import DefaultRouter

from finance.api import PaymentViewSet
from finance.api_statements import StatementViewSet

from .placements import PlacementViewSet
from .views import AccountViewSet, ContactAttemptViewSet


class Router(DefaultRouter):
    """Object ids in this API are integers: a non-numeric id (``null,null``) matches no route and is a 404,
    never a database error from the lookup. A viewset may still declare its own ``lookup_value_regex``."""

    def get_lookup_regex(self, viewset, lookup_prefix=""):
        kwarg = getattr(viewset, "lookup_url_kwarg", None) or getattr(viewset, "lookup_field", "pk")
        return f"(?P<{lookup_prefix}{kwarg}>{getattr(viewset, 'lookup_value_regex', '[0-9]+')})"


router = Router()
router.register("accounts", AccountViewSet, basename="account")
router.register("placements", PlacementViewSet, basename="placement")
router.register("contact-attempts", ContactAttemptViewSet, basename="contact-attempt")
router.register("payments", PaymentViewSet, basename="payment")  # finance: lender-reported payments
router.register("statements", StatementViewSet, basename="statement")  # finance: remittance statements
urlpatterns = router.urls
