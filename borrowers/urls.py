from django.urls import path

from . import lender_views, staff_views, views, webhooks

app_name = "borrowers"

urlpatterns = [
    path("b/l/<str:token>/", views.access, name="access"),
    path("b/", views.home, name="home"),
    path("b/promise/", views.promise, name="promise"),
    path("b/plan/", views.plan, name="plan"),
    path("b/dispute/", views.dispute, name="dispute"),
    path("b/callback/", views.callback, name="callback"),
    path("b/preferences/", views.preferences, name="preferences"),
    path("b/opt-out/", views.opt_out, name="opt-out"),
    path("b/sign-out/", views.sign_out, name="sign-out"),
    path("borrowers/requests/", staff_views.proposal_list, name="staff"),
    path("borrowers/proposals/<int:pk>/accept/", staff_views.proposal_decide, {"decision": "accept"},
         name="proposal-accept"),
    path("borrowers/proposals/<int:pk>/counter/", staff_views.proposal_decide, {"decision": "counter"},
         name="proposal-counter"),
    path("borrowers/disputes/<int:pk>/verify/", staff_views.dispute_verify, name="dispute-verify"),
    path("borrowers/disputes/<int:pk>/resolve/", staff_views.dispute_resolve, name="dispute-resolve"),
    path("borrowers/holds/<int:pk>/lift/", staff_views.hold_lift, name="hold-lift"),
    path("borrowers/link/", staff_views.link_send, name="link-send"),
    path("borrowers/evidence/<int:pk>/", staff_views.evidence_download, name="evidence"),
    path("portal/disputes/", lender_views.lender_disputes, name="lender-disputes"),
    path("portal/disputes/<int:pk>/resolve/", lender_views.lender_dispute_resolve, name="lender-dispute-resolve"),
    path("hooks/sms/inbound/", webhooks.sms_inbound, name="sms-inbound"),
]
