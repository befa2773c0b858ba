"""Template helpers shared by every page: the team switcher, form rows, role badges."""

from typing import Any

from django import forms, template
from django.forms.boundfield import BoundField

register = template.Library()


@register.simple_tag(takes_context=True)
def user_teams(context: template.Context) -> list[Any]:
    """The signed-in user's teams for the switcher, read once per request."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if request is None or user is None or not user.is_authenticated:
        return []
    cached: list[Any] | None = getattr(request, "_manifold_user_teams", None)
    if cached is None:
        from apps.teams.selectors import team_list_for_user

        cached = list(team_list_for_user(user=user))
        request._manifold_user_teams = cached
    return cached


@register.inclusion_tag("includes/field.html")
def form_field(field: BoundField, optional_hint: bool = True) -> dict[str, Any]:
    """One labelled form row with help text and its errors right below the input.

    ``optional_hint=False`` drops the "(optional)" marker, for filter bars where every field is.
    """
    widget = field.field.widget
    if isinstance(widget, forms.CheckboxInput):
        widget_type = "checkbox"
    elif isinstance(widget, forms.CheckboxSelectMultiple | forms.RadioSelect):
        widget_type = "multi"
    else:
        widget_type = "input"
    return {"field": field, "widget_type": widget_type, "optional_hint": optional_hint}


ROLE_BADGES = {"owner", "member", "viewer", "dashboard"}


@register.filter
def role_badge_class(role: object) -> str:
    """CSS modifier for a role name; custom roles share one colour."""
    name = str(role or "").lower()
    return f"badge-{name}" if name in ROLE_BADGES else "badge-custom"


@register.filter
def permission_words(key: object) -> str:
    """A permission key as the sentence people read ("Read the audit log"), else the key."""
    from apps.rbac.permissions import PERMISSIONS

    spec = PERMISSIONS.get(str(key))
    return spec.description if spec is not None else str(key)
