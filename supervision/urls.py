from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="supervisor-home"),
    path("audit/", views.audit_log, name="supervisor-audit"),
    path("audit/export.<str:fmt>", views.audit_export, name="supervisor-audit-export"),
    path("audit/account/<int:account_id>/", views.audit_account, name="supervisor-audit-account"),
    path("audit/event/<int:pk>/", views.audit_event, name="supervisor-audit-event"),
    path("audit/verify/", views.audit_verify_start, name="supervisor-audit-verify"),
    path("audit/verify/status/", views.audit_verify_status, name="supervisor-audit-verify-status"),
    path("policies/", views.policy_list, name="supervisor-policies"),
    path("policies/<str:code>/draft/", views.policy_draft, name="supervisor-policy-draft"),
    path("policies/version/<int:pk>/", views.policy_detail, name="supervisor-policy"),
    path("policies/version/<int:pk>/publish/", views.policy_publish, name="supervisor-policy-publish"),
    path("agents/", views.agent_list, name="supervisor-agents"),
    path("incidents/", views.incident_list, name="supervisor-incidents"),
    path("incidents/<int:pk>/review/", views.incident_review, name="supervisor-incident-review"),
    path("agents/<int:pk>/", views.agent_edit, name="supervisor-agent-edit"),
]
