from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"

    def ready(self) -> None:
        from apps.audit.redaction import install_log_filter

        checks.register(check_syslog_target, checks.Tags.compatibility)
        # Invitation and reset links carry their secret in the path; request logs print paths.
        install_log_filter()


def check_syslog_target(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A malformed MANIFOLD_AUDIT_SYSLOG fails ``manage.py check`` instead of every write."""
    from apps.audit.syslog import syslog_target

    try:
        syslog_target()
    except ValueError as error:
        return [checks.Error(str(error), id="audit.E001")]
    return []
