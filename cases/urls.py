from django.urls import path

from .views import assignment, home, portal, workspace

urlpatterns = [
    path("", home.home, name="home"),
    # Agent workspace (issue #3)
    path("queue/", workspace.queue, name="queue"),
    path("cases/<int:pk>/", workspace.case_detail, name="case-detail"),
    path("cases/<int:pk>/check/", workspace.case_check, name="case-check"),
    path("cases/<int:pk>/outreach/", workspace.case_outreach, name="case-outreach"),
    path("cases/<int:pk>/outreach/start/", workspace.case_outreach_start, name="case-outreach-start"),
    path("cases/<int:pk>/outreach/<int:attempt_id>/complete/", workspace.case_outreach_complete,
         name="case-outreach-complete"),
    path("cases/<int:pk>/promise/", workspace.case_promise, name="case-promise"),
    path("cases/<int:pk>/plan/", workspace.case_plan, name="case-plan"),
    path("cases/<int:pk>/payment/", workspace.case_payment, name="case-payment"),
    path("cases/<int:pk>/callback/", workspace.case_callback, name="case-callback"),
    path("cases/<int:pk>/note/", workspace.case_note, name="case-note"),
    path("cases/<int:pk>/status/", workspace.case_status, name="case-status"),
    path("cases/<int:pk>/contact-times/", workspace.case_contact_times, name="case-contact-times"),
    path("cases/<int:pk>/reveal/", workspace.case_reveal, name="case-reveal"),
    path("cases/<int:pk>/release/", workspace.case_release, name="case-release"),
    path("cases/<int:pk>/assign/", workspace.case_assign, name="case-assign"),
    path("assignment/", assignment.assignment, name="assignment"),
    # Lender portal and lender registration (issue #4)
    path("portal/", portal.portal_home, name="portal-home"),
    path("portal/batches/<int:pk>/", portal.portal_batch, name="portal-batch"),
    path("portal/batches/<int:pk>/progress/", portal.portal_batch_progress, name="portal-batch-progress"),
    path("portal/batches/<int:pk>/errors.csv", portal.portal_batch_errors, name="portal-batch-errors"),
    path("portal/template-<str:lang>.<str:fmt>", portal.portal_template, name="portal-template"),
    path("portal/format/", portal.portal_format, name="portal-format"),
    path("portal/accounts/", portal.portal_accounts, name="portal-accounts"),
    path("portal/recall/", portal.portal_recall, name="portal-recall"),
    path("portal/mapping/", portal.portal_mapping, name="portal-mapping"),
    path("portal/export.csv", portal.portal_export, {"fmt": "csv"}, name="portal-export-csv"),
    path("portal/export.json", portal.portal_export, {"fmt": "json"}, name="portal-export-json"),
    path("lenders/register/", portal.lender_register, name="lender-register"),
    path("lenders/register/done/", portal.lender_register_done, name="lender-register-done"),
    path("lenders/approvals/", portal.lender_approvals, name="lender-approvals"),
    path("lenders/<int:pk>/approve/", portal.lender_decide, {"decision": "approve"}, name="lender-approve"),
    path("lenders/<int:pk>/reject/", portal.lender_decide, {"decision": "reject"}, name="lender-reject"),
]
