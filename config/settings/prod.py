"""Production: PostgreSQL + Redis, configured by environment variables only.

Required: MANIFOLD_SECRET_KEY (>= 50 random characters), MANIFOLD_DATABASE_URL (postgres://),
MANIFOLD_REDIS_URL (redis://), MANIFOLD_ALLOWED_HOSTS, MANIFOLD_KEY_ENCRYPTION_KEY (base64 of 32
random bytes: the team keys must not depend on SECRET_KEY staying the same). Missing or unsafe
values stop the process at start with one message naming every problem, instead of running
half-configured.
"""

import base64
import binascii
import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env_bool


def _is_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text.encode(), validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _problems() -> list[str]:
    problems = []
    if "MANIFOLD_SECRET_KEY" not in os.environ or len(SECRET_KEY) < 50:
        problems.append("MANIFOLD_SECRET_KEY must be set to at least 50 random characters")
    if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
        problems.append("MANIFOLD_DATABASE_URL must be a postgres:// URL")
    if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
        problems.append("MANIFOLD_REDIS_URL must be a redis:// URL")
    if "MANIFOLD_ALLOWED_HOSTS" not in os.environ or not ALLOWED_HOSTS:
        problems.append("MANIFOLD_ALLOWED_HOSTS must list the public host names")
    if not _is_key(MANIFOLD_KEY_ENCRYPTION_KEY):
        problems.append("MANIFOLD_KEY_ENCRYPTION_KEY must be set to base64 of 32 random bytes")
    return problems


if problems := _problems():
    raise ImproperlyConfigured("Production settings: " + "; ".join(problems) + ".")

DEBUG = False
# psycopg's pool (Django 5.1+): every web, worker and beat process holds at most
# MANIFOLD_DATABASE_POOL_SIZE connections, reused across the per-request threads of ASGI and the
# websocket consumers' database thread. Measured against CONN_MAX_AGE=0 (a connection per
# request and per consumer check) in README "Production": bounded, and faster under load.
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["OPTIONS"] = {
    "pool": {
        "min_size": 1,
        "max_size": int(os.environ.get("MANIFOLD_DATABASE_POOL_SIZE", "10")),
        # A request waits this long for a free connection before failing.
        "timeout": 30,
    }
}
# The TLS-terminating proxy sets X-Forwarded-Proto (and must overwrite any value a client sent):
# requests it forwarded count as HTTPS, so with the redirect on nothing behind the proxy loops.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("MANIFOLD_SSL_REDIRECT", True)
if not SECURE_SSL_REDIRECT:
    # MANIFOLD_SSL_REDIRECT=0 declares that the proxy itself redirects plain HTTP (deploy/README);
    # the redirect check cannot see the proxy, so it is answered by that declaration.
    SILENCED_SYSTEM_CHECKS = ["security.W008"]
# The proxy answers health checks over plain HTTP on loopback.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = int(os.environ.get("MANIFOLD_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("MANIFOLD_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("MANIFOLD_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
