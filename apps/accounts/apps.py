from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"

    def ready(self) -> None:
        # Registers the OpenAPI descriptions of the authentication classes.
        from apps.accounts import schema  # noqa: F401
