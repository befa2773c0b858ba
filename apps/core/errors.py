"""Base errors of the domain. Services raise these; the API maps each to one HTTP status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class ManifoldError(Exception):
    """Base of every expected, user-facing domain error."""

    status_code = 400
    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ValidationError(ManifoldError):
    """Bad input (400), optionally with messages per field."""

    status_code = 400
    code = "invalid"

    def __init__(
        self,
        message: str = "Invalid input.",
        *,
        fields: Mapping[str, str | Sequence[str]] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.fields: dict[str, list[str]] = {
            name: [errors] if isinstance(errors, str) else list(errors)
            for name, errors in (fields or {}).items()
        }


class PermissionDenied(ManifoldError):  # noqa: N818  # the HTTP names read best
    """The actor can see the object but may not do this (403)."""

    status_code = 403
    code = "permission_denied"


class NotFound(ManifoldError):  # noqa: N818  # the HTTP names read best
    """Missing or belonging to another team: the two are never told apart (404)."""

    status_code = 404
    code = "not_found"

    def __init__(self, message: str = "Not found.", *, code: str | None = None) -> None:
        super().__init__(message, code=code)


class Conflict(ManifoldError):  # noqa: N818  # the HTTP names read best
    """The request clashes with the current state, e.g. removing the last owner (409)."""

    status_code = 409
    code = "conflict"
