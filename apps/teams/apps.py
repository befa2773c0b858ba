from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "apps.teams"
    label = "teams"

    def ready(self) -> None:
        from apps.core.consumers import register_team_resolver
        from apps.teams.access import access_team_for_user

        # Team websockets (in core, below this app) resolve their team through teams' access.
        register_team_resolver(access_team_for_user)
