"""Email addresses as every app stores and compares them."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email

from apps.core.errors import ValidationError


def normalize_email(email: str) -> str:
    """Lower-cased, stripped, and checked; raises ValidationError on a malformed address."""
    cleaned = (email or "").strip().lower()
    try:
        validate_email(cleaned)
    except DjangoValidationError:
        raise ValidationError(
            "Enter a valid email address.", fields={"email": "Enter a valid email address."}
        ) from None
    return cleaned
