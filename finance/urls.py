from django.urls import path, re_path

from . import views

app_name = "finance"
urlpatterns = [
    path("accounts/<int:pk>/settlement/", views.settlement_offer, name="settlement-offer"),
    path("settlements/", views.settlement_queue, name="settlements"),
    path("settlements/<int:pk>/decide/", views.settlement_decide, name="settlement-decide"),
    path("statements/", views.statement_list, name="statements"),
    path("payments/upload/", views.payment_file_upload, name="payment-upload"),
    path("statements/issue/", views.statement_issue, name="statement-issue"),
    re_path(r"^statements/(?P<pk>[0-9]+)\.(?P<fmt>csv|pdf|xlsx)$", views.statement_download, name="statement-download"),
]
