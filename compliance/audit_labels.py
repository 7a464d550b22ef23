"""The one table of labels of audit action codes, shown to supervisors (audit log console) and to
agents (case-page timeline).

Pure: translatable strings only, no import of the apps built on the compliance core (the codes are
plain strings; tests/test_dependencies.py). ``tests/compliance/test_audit_labels.py`` collects every
action the code emits and fails when one has no label here or no Chinese translation
(``locale_src/audit_labels.json``)."""

from __future__ import annotations

from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

AUDIT_ACTION_LABELS: dict[str, str] = {
    # Signing in and out (compliance/signals.py)
    "auth.login": _("Signed in"),
    "auth.logout": _("Signed out"),
    "auth.login_failed": _("Sign-in failed"),
    # Borrower page (borrowers/)
    "borrowers.access.verified": _("Borrower page opened (identity checked)"),
    "borrowers.access.failed": _("Borrower page access refused"),
    "borrowers.link.issued": _("Borrower page link issued"),
    "borrowers.promise.made": _("Borrower promised to pay online"),
    "borrowers.plan.proposed": _("Borrower proposed a repayment plan"),
    "borrowers.plan.chosen": _("Borrower chose a repayment plan online"),
    "borrowers.plan.accepted": _("Borrower's plan proposal accepted"),
    "borrowers.plan.countered": _("Borrower's plan proposal countered"),
    "borrowers.dispute.raised": _("Borrower raised a dispute (hold on)"),
    "borrowers.dispute.verification_requested": _("Dispute sent to the lender for verification"),
    "borrowers.dispute.resolved": _("Dispute resolved"),
    "borrowers.hold.lifted": _("Hold lifted by a supervisor"),
    "borrowers.evidence.viewed": _("Dispute evidence opened"),
    "borrowers.opt_out.requested": _("Borrower opted out online"),
    "borrowers.preferences.changed": _("Borrower changed contact preferences"),
    "cases.borrower.contact_times_changed": _("Times that suit the borrower changed"),
    "borrowers.callback.requested": _("Borrower booked a call back"),
    "borrowers.callback.refused": _("Borrower's call back time refused by the contact rules"),
    "borrowers.message.refused": _("Message refused: it would name the debt to a third party"),
    "borrowers.message.sent": _("Message handed to the provider"),
    "borrowers.message.receipt": _("Message delivery report received"),
    "borrowers.template.saved": _("Message template saved"),
    "borrowers.complaint.received": _("Complaint received"),
    "borrowers.complaint.assigned": _("Complaint assigned"),
    "borrowers.complaint.answered": _("Complaint answered"),
    "borrowers.education.changed": _("Borrower education page changed"),
    # Accounts and the agent's work (cases/)
    "cases.account.aged": _("Ageing bucket changed"),
    "cases.account.assigned": _("Assignment changed"),
    "cases.account.locked": _("Opened for work (locked)"),
    "cases.account.unlocked": _("Account released (unlocked)"),
    "cases.account.recalled": _("Recalled by the lender"),
    "cases.account.status_changed": _("Account status changed"),
    "cases.account.updated": _("Updated by a placement file"),
    "cases.ageing.run": _("Daily ageing run"),
    "cases.agent.settings_changed": _("Agent settings changed"),
    "cases.borrower.opted_out": _("Opted out of messages (STOP / unsubscribe)"),
    "cases.borrower.updated": _("Contact details added by a placement file"),
    "cases.callback.scheduled": _("Callback scheduled"),
    "cases.column_mapping.saved": _("Column mapping saved"),
    "cases.contact_attempt.recorded": _("Outreach recorded"),
    "cases.contact_attempt.started": _("Outreach started"),
    "cases.contact_attempt.completed": _("Outreach outcome recorded"),
    "cases.contact_attempt.unreported": _("Outreach closed as unreported after 30 minutes"),
    "cases.contact_attempt.outcome_changed": _("Outreach outcome changed (delivery failed)"),
    "cases.instalment.missed": _("Instalment missed"),
    "cases.lender.registered": _("Lender registered"),
    "cases.lender.approved": _("Lender approved"),
    "cases.lender.suspended": _("Lender refused or suspended"),
    "cases.note.added": _("Note added"),
    "cases.payment.recorded": _("Payment recorded"),
    "cases.pii.viewed": _("Unmasked personal data viewed"),
    # f"cases.placement.{state}" (cases/importers/services.py) with the batch's final states
    "cases.placement.uploaded": _("File uploaded"),
    "cases.placement.applied": _("File applied"),
    "cases.placement.rejected": _("File rejected"),
    "cases.placement.failed": _("File failed"),
    "cases.placement.requeued": _("File queued again"),
    "cases.plan.broken": _("Repayment plan broken"),
    "cases.promise.broken": _("Promise broken"),
    "cases.promise.created": _("Promise to pay recorded"),
    "cases.repayment_plan.created": _("Repayment plan created"),
    "cases.repayment_plan.approved": _("Repayment plan approved"),
    "cases.repayment_plan.declined": _("Repayment plan declined"),
    "cases.repayment_plan.completed": _("Repayment plan completed"),
    # Compliance core
    "compliance.audit.verify_requested": _("Audit chain verification requested"),
    "compliance.callback.blocked": _("Callback refused by the compliance check"),
    "compliance.contact.blocked": _("Outreach refused by the compliance check"),
    "compliance.incident.opened": _("Breach flagged for supervisor review"),
    "compliance.incident.reviewed": _("Incident reviewed by a supervisor"),
    "compliance.policy.drafted": _("Policy drafted"),
    "compliance.policy.published": _("Policy published"),
    # Money (finance/); f"finance.settlement.{action}" in finance/services.py
    "finance.allocation_order.published": _("Payment allocation order published"),
    "finance.balance.resynced": _("Balance breakdown resynchronised"),
    "finance.commission_plan.published": _("Commission plan published"),
    "finance.payment.allocated": _("Payment allocated"),
    "finance.payment.reversed": _("Payment reversed"),
    "finance.payment_file.imported": _("Payment file imported"),
    "finance.settlement.offered": _("Settlement offered"),
    "finance.settlement.approved": _("Settlement approved"),
    "finance.settlement.declined": _("Settlement declined"),
    "finance.settlement.withdrawn": _("Settlement withdrawn"),
    "finance.settlement.settled": _("Settlement paid; account settled"),
    "finance.settlement.reopened": _("Settlement reopened (payment reversed)"),
    "finance.settlement_rule.published": _("Settlement rules published"),
    "finance.statement.issued": _("Remittance statement issued"),
    # Borrower reminders (reminders/)
    "reminders.reminder.scheduled": _("Reminder scheduled"),
    "reminders.reminder.deferred": _("Reminder deferred by the contact rules"),
    "reminders.reminder.cancelled": _("Reminder cancelled"),
    "reminders.reminder.sent": _("Reminder sent"),
    "reminders.reminder.failed": _("Reminder failed"),
    "reminders.reminder.retry_scheduled": _("Reminder retry scheduled"),
    "reminders.reminder.recovered": _("Reminder rescheduled after an interrupted send"),
    "reminders.reminder.requeued": _("Reminder queued again"),
    # Scores and contact strategies (scoring/); f"scoring.strategy.step_{state}" in strategy_services.py
    "scoring.model.created": _("Scoring model created"),
    "scoring.model.trained": _("Scoring model trained"),
    "scoring.model.promoted": _("Scoring model put into use"),
    "scoring.scores.refreshed": _("Scores refreshed"),
    "scoring.strategy.published": _("Contact strategy published"),
    "scoring.experiment.set": _("Strategy experiment set"),
    "scoring.strategy.step_done": _("Strategy step carried out"),
    "scoring.strategy.step_refused": _("Strategy step refused by the compliance check"),
    "scoring.strategy.step_agent": _("Strategy step left to the agent"),
    "scoring.strategy.step_skipped": _("Strategy step skipped"),
}

# ``admin.<app>.<model>.<verb>`` (cases/admin.py, AuditedAdminMixin): the objects the admin audits and its verbs.
ADMIN_OBJECT_LABELS: dict[str, str] = {
    "cases.user": pgettext_lazy("audit admin object", "user"),
    "cases.lender": pgettext_lazy("audit admin object", "lender"),
    "cases.borrower": pgettext_lazy("audit admin object", "borrower"),
    "cases.overdueaccount": pgettext_lazy("audit admin object", "overdue account"),
}
ADMIN_VERB_LABELS: dict[str, str] = {
    "added": pgettext_lazy("audit admin verb", "added"),
    "changed": pgettext_lazy("audit admin verb", "changed"),
    "deleted": pgettext_lazy("audit admin verb", "deleted"),
    "password_changed": pgettext_lazy("audit admin verb", "password changed"),
}


def audit_action_label(code: str) -> str:
    """The translated label of an action code; an unknown code is shown as it is."""
    label = AUDIT_ACTION_LABELS.get(code)
    if label is not None:
        return str(label)
    if code.startswith("admin."):
        model, _sep, verb = code.removeprefix("admin.").rpartition(".")
        if model and verb in ADMIN_VERB_LABELS:
            obj = ADMIN_OBJECT_LABELS.get(model, model)  # a model not listed yet: its app.model label
            # Translators: an edit in the admin site, e.g. "Admin: borrower deleted".
            return gettext("Admin: %(object)s %(verb)s") % {"object": obj, "verb": ADMIN_VERB_LABELS[verb]}
    return code
