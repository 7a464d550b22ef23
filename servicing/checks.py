"""Deployment checks (``manage.py check --deploy``) for settings the project adds."""

from django.conf import settings
from django.core.checks import Warning, register


@register(deploy=True)
def audit_checkpoint_key_check(app_configs, **kwargs):
    # Without the key no checkpoint is written, and a rewound audit chain goes unnoticed (compliance/audit.py).
    if len(getattr(settings, "AUDIT_CHECKPOINT_KEY", "") or "") < 32:
        return [Warning("AUDIT_CHECKPOINT_KEY is unset or shorter than 32 characters: audit checkpoints "
                        "cannot be signed.", hint="Set it in the environment (never in the database).",
                        id="servicing.W001")]
    return []
