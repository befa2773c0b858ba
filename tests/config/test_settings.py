"""Production mode is reached by environment variables alone and passes Django's deploy checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Outside `make test-fast`: manage.py in subprocesses.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.prod",
    "MANIFOLD_SECRET_KEY": "k" * 20 + "-production-secret-for-tests-only-0123456789abcdef",
    "MANIFOLD_DATABASE_URL": "postgres://manifold@127.0.0.1:5432/manifold",
    "MANIFOLD_REDIS_URL": "redis://127.0.0.1:6379/0",
    "MANIFOLD_ALLOWED_HOSTS": "manifold.example.com",
    "MANIFOLD_CSRF_TRUSTED_ORIGINS": "https://manifold.example.com",
    "MANIFOLD_KEY_ENCRYPTION_KEY": "dGVzdHMtb25seS10ZXN0cy1vbmx5LXRlc3RzLW9ubHk=",
}


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MANIFOLD_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_under_production_settings() -> None:
    result = manage(PRODUCTION_ENV, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_is_clean_when_the_proxy_redirects_to_https() -> None:
    # deploy/README.md: MANIFOLD_SSL_REDIRECT=0 declares that the TLS proxy redirects itself.
    result = manage(
        {**PRODUCTION_ENV, "MANIFOLD_SSL_REDIRECT": "0"},
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_reuses_database_connections_through_a_bounded_pool() -> None:
    # Persistent per-thread connections leak under ASGI (a new executor thread per request).
    code = (
        "from django.conf import settings as s; d = s.DATABASES['default'];"
        "print(d['CONN_MAX_AGE'], d['OPTIONS']['pool']['max_size'])"
    )
    result = manage({**PRODUCTION_ENV, "MANIFOLD_DATABASE_POOL_SIZE": "7"}, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["0", "7"]


def test_production_uses_postgres_redis_channels_and_redis_broker() -> None:
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE']);"
        "print(s.CHANNEL_LAYERS['default']['BACKEND']);"
        "print(s.CELERY_BROKER_URL); print(s.DEBUG)"
    )
    result = manage(PRODUCTION_ENV, "shell", "--no-imports", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "apps.core.redis_layer.RedisChannelLayer",
        "redis://127.0.0.1:6379/0",
        "False",
    ]


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("MANIFOLD_SECRET_KEY", "MANIFOLD_SECRET_KEY must be set"),
        ("MANIFOLD_DATABASE_URL", "MANIFOLD_DATABASE_URL must be a postgres:// URL"),
        ("MANIFOLD_REDIS_URL", "MANIFOLD_REDIS_URL must be a redis:// URL"),
        ("MANIFOLD_ALLOWED_HOSTS", "MANIFOLD_ALLOWED_HOSTS must list"),
        ("MANIFOLD_KEY_ENCRYPTION_KEY", "MANIFOLD_KEY_ENCRYPTION_KEY must be set"),
    ],
)
def test_production_refuses_to_start_half_configured(missing: str, message: str) -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = manage(env, "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_short_secret_key_is_refused() -> None:
    result = manage({**PRODUCTION_ENV, "MANIFOLD_SECRET_KEY": "too-short"}, "check")
    assert result.returncode != 0
    assert "at least 50 random characters" in result.stderr


def test_embedded_defaults_use_sqlite_wal_filesystem_broker_and_sqlite_layer() -> None:
    code = (
        "from django.conf import settings as s; from django.db import connection;"
        "print(s.DATABASES['default']['ENGINE']); print(s.CHANNEL_LAYERS['default']['BACKEND']);"
        "print(s.CELERY_BROKER_URL);"
        "c = connection.cursor(); c.execute('PRAGMA journal_mode'); print(c.fetchone()[0])"
    )
    result = manage(
        {"DJANGO_SETTINGS_MODULE": "config.settings.dev"}, "shell", "--no-imports", "-c", code
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "apps.core.channel_layers.SQLiteChannelLayer",
        "filesystem://",
        "wal",
    ]
