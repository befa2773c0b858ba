"""Small renderers of the fleet pages: status pills, "2 min ago", byte sizes, sparklines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from apps.devices.models import ProvisioningToken

register = template.Library()

STATUS_WORDS = {
    "online": "Online",
    "offline": "Offline",
    "updating": "Updating",
    "error": "Error",
    "suspended": "Suspended",
    "pending": "Pending",
    "decommissioned": "Decommissioned",
}


@register.simple_tag
def status_pill(status: str) -> SafeString:
    """A coloured dot and the word: the colour is never the only signal."""
    word = STATUS_WORDS.get(status, status or "Unknown")
    return format_html(
        '<span class="pill pill-{}"><span class="pill-dot" aria-hidden="true"></span>{}</span>',
        status if status in STATUS_WORDS else "unknown",
        word,
    )


def ago_words(when: dt.datetime | None, now: dt.datetime | None = None) -> str:
    if when is None:
        return "never"
    seconds = int(((now or timezone.now()) - when).total_seconds())
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{seconds} s ago"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h ago"
    return f"{hours // 24} days ago"


@register.simple_tag
def ago(when: dt.datetime | None) -> SafeString:
    """<time> saying "2 min ago", the exact UTC time in its title."""
    if when is None:
        return format_html('<span class="muted">{}</span>', "never")
    exact = when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', when.isoformat(), exact, ago_words(when)
    )


@register.filter
def size(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"  # a figure the heartbeat did not report
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(amount) < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TB"


@register.filter
def duration(seconds: object) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "—"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


@register.simple_tag
def sparkline(values: Sequence[float | None], label: str) -> SafeString:
    """An inline SVG line of the values (oldest first); an empty box when there are none."""
    points = [float(v) for v in values if v is not None]
    width, height = 120, 28
    if len(points) < 2:
        return format_html(
            '<svg class="sparkline" viewBox="0 0 {} {}" role="img" aria-label="{}">'
            "<title>{}</title></svg>",
            width,
            height,
            f"{label}: not enough data",
            f"{label}: not enough data",
        )
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = width / (len(points) - 1)
    path = " ".join(
        f"{i * step:.1f},{height - 2 - (value - low) / span * (height - 4):.1f}"
        for i, value in enumerate(points)
    )
    description = f"{label}: {len(points)} readings, low {low:.3g}, high {high:.3g}"
    return format_html(
        '<svg class="sparkline" viewBox="0 0 {} {}" preserveAspectRatio="none" role="img" '
        'aria-label="{}"><title>{}</title><polyline points="{}" /></svg>',
        width,
        height,
        description,
        description,
        mark_safe(path),  # noqa: S308  # numbers formatted above, nothing from input
    )


@register.simple_tag
def token_status(token: ProvisioningToken, now: dt.datetime) -> str:
    """Whether a provisioning token still registers devices, and if not, why."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    if token.max_uses is not None and token.uses >= token.max_uses:
        return "used up"
    return "active"
