from rest_framework.routers import DefaultRouter

from .placements import PlacementViewSet
from .views import AccountViewSet

router = DefaultRouter()
router.register("accounts", AccountViewSet, basename="account")
router.register("placements", PlacementViewSet, basename="placement")
urlpatterns = router.urls
