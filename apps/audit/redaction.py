"""Secret scrubbing for before/after details (RELIABILITY.md family 30).

A key is secret when one of its words (split on ``_``, ``-``, ``.``, spaces and camelCase) is a
listed word or its plural: ``password``, ``api_key``, ``clientSecret``, ``refresh_tokens``.
``AUDIT_REDACT_WORDS`` replaces the word list; ``AUDIT_REDACT_ALLOW`` names exact keys that are
safe although they contain such a word (a token's public prefix, a role's permission keys).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.conf import settings

REDACTED = "[redacted]"
DEFAULT_REDACT_WORDS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "credentials",
    "key",
    "apikey",
    "privatekey",
    "cookie",
    "session",
    "authorization",
    "signature",
)
DEFAULT_REDACT_ALLOW: tuple[str, ...] = (
    "token_prefix",
    "prefix",
    "permission_keys",
    "permissions",
    "key_prefix",
    "token_id",
    "token_name",
)
# Values redacted wherever they appear: full tokens and credentials (prefix + 43 characters;
# a 10-character public prefix stays readable) and registration codes.
DEFAULT_REDACT_VALUE_PATTERNS: tuple[str, ...] = (
    r"mfp_[A-Za-z0-9_\-]{20,}",  # personal access tokens
    r"mft_[A-Za-z0-9_\-]{20,}",  # provisioning tokens
    r"mfd_[A-Za-z0-9_\-]{20,}",  # device credentials
    r"MFR-[0-9A-Za-z]{4}-[0-9A-Za-z]{4}-[0-9A-Za-z]{4}",  # registration codes
)
_WORD_SPLIT = re.compile(r"[^0-9a-zA-Z]+|(?<=[a-z0-9])(?=[A-Z])")


def _redact_words() -> frozenset[str]:
    words = getattr(settings, "AUDIT_REDACT_WORDS", DEFAULT_REDACT_WORDS)
    return frozenset(word.lower() for word in words)


def _allowed_keys() -> frozenset[str]:
    return frozenset(getattr(settings, "AUDIT_REDACT_ALLOW", DEFAULT_REDACT_ALLOW))


def _value_pattern() -> re.Pattern[str] | None:
    patterns = getattr(settings, "AUDIT_REDACT_VALUE_PATTERNS", DEFAULT_REDACT_VALUE_PATTERNS)
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


def is_secret_key(key: str, words: frozenset[str] | None = None) -> bool:
    """Whether a mapping key names a secret."""
    words = _redact_words() if words is None else words
    parts = [part.lower() for part in _WORD_SPLIT.split(key) if part]
    joined = "".join(parts)
    if joined in words:
        return True
    return any(part in words or (part.endswith("s") and part[:-1] in words) for part in parts)


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with every secret-named key's value replaced by [redacted]."""
    return _redact(value, _redact_words(), _allowed_keys(), _value_pattern())


def redact_text(text: str) -> str:
    """Replace secret-looking substrings (full tokens) inside free text."""
    pattern = _value_pattern()
    return pattern.sub(REDACTED, text) if pattern else text


def _redact(
    value: Any, words: frozenset[str], allowed: frozenset[str], pattern: re.Pattern[str] | None
) -> Any:
    if isinstance(value, dict):
        return {
            key: (
                REDACTED
                if key not in allowed and is_secret_key(str(key), words)
                else _redact(item, words, allowed, pattern)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item, words, allowed, pattern) for item in value]
    if isinstance(value, str) and pattern is not None:
        return pattern.sub(REDACTED, value)
    return value


# URL paths whose segments are credentials: invitation links and password reset links. Django's
# request logger ("Not Found: /invitations/<secret>/") and access logs would otherwise write them.
SECRET_PATH = re.compile(
    r"(?P<lead>/invitations/)(?P<secret>[^/?#\s\"']+)"
    r"|(?P<reset>/password/reset/[^/?#\s\"']+/)(?P<reset_secret>(?!set-password)[^/?#\s\"']+)"
)


def redact_path(text: str) -> str:
    """Replace the secret segments of invitation and password reset URLs inside ``text``."""

    def replace(match: re.Match[str]) -> str:
        lead = match.group("lead") or match.group("reset")
        return f"{lead}{REDACTED}"

    return SECRET_PATH.sub(replace, text)


def _scrub(value: Any) -> Any:
    return redact_text(redact_path(value)) if isinstance(value, str) else value


class SecretLogFilter(logging.Filter):
    """Scrubs link secrets and full tokens from a record's message and arguments; never drops.

    ``apps.audit.apps.AuditConfig.ready`` installs it on the loggers that print request paths.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _scrub(arg) for key, arg in record.args.items()}
        return True


# Loggers that write request paths: Django's request/server/security loggers, uvicorn's access log.
PATH_LOGGERS: tuple[str, ...] = (
    "django.request",
    "django.server",
    "django.security",
    "django.security.csrf",
    "uvicorn.access",
    "uvicorn.error",
)


def install_log_filter() -> None:
    """Attach one SecretLogFilter to each of ``PATH_LOGGERS`` (idempotent)."""
    for name in PATH_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, SecretLogFilter) for existing in logger.filters):
            logger.addFilter(SecretLogFilter())
