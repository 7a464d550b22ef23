from django.urls import include, path

from . import lender_views, staff_views, views, webhooks

app_name = "borrowers"

urlpatterns = [
    path("b/l/<str:token>/", views.access, name="access"),
    path("b/", views.home, name="home"),
    path("b/promise/", views.promise, name="promise"),
    path("b/plan/", views.plan, name="plan"),
    path("b/plan/choose/", views.plan_choose, name="plan-choose"),
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
    path("cases/<int:pk>/message/", staff_views.case_message, name="case-message"),
    path("borrowers/evidence/<int:pk>/", staff_views.evidence_download, name="evidence"),
    path("borrowers/complaints/", staff_views.complaint_list, name="complaints"),
    path("borrowers/complaints/new/", staff_views.complaint_new, name="complaint-new"),
    path("borrowers/complaints/<int:pk>/assign/", staff_views.complaint_assign, name="complaint-assign"),
    path("borrowers/complaints/<int:pk>/answer/", staff_views.complaint_answer, name="complaint-answer"),
    path("borrowers/education/", staff_views.education_list, name="education"),
    path("borrowers/education/<int:pk>/", staff_views.education_edit, name="education-edit"),
    path("borrowers/templates/", staff_views.template_list, name="templates"),
    path("b/complaint/", views.complaint, name="complaint"),
    path("portal/disputes/", lender_views.lender_disputes, name="lender-disputes"),
    path("portal/disputes/<int:pk>/resolve/", lender_views.lender_dispute_resolve, name="lender-dispute-resolve"),
    path("hooks/sms/inbound/", webhooks.sms_inbound, name="sms-inbound"),
    path("hooks/sms/status/", webhooks.sms_status, name="sms-status"),
    path("hooks/email/", include("anymail.urls")),  # anymail's per-provider tracking webhooks (signed)
]
