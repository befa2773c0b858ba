"""Test settings: the same stack as dev (or PostgreSQL/Redis when MANIFOLD_* says so)."""

import os

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Unit tests run tasks inline; tests/config/test_celery_worker.py proves a real worker round trip.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# pytest-xdist workers share Redis / the var folder: give each its own channel namespace so
# group "team-1" of one worker's test database never reaches another worker's sockets.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
if REDIS_URL:
    CHANNEL_LAYERS["default"]["CONFIG"] = {
        "hosts": [REDIS_URL],
        "prefix": f"manifold-test-{_WORKER}",
    }
else:
    CHANNEL_LAYERS["default"]["CONFIG"] = {
        "path": str(VAR_DIR / "test" / f"channels-{_WORKER}.sqlite3"),
        "polling_interval": 0.01,
    }

# Each run's throttle counters in its own folder (tests/conftest.py empties it per test).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "test" / f"cache-{_WORKER}"),
    }
}

# WhiteNoise warns (an error under pytest) when STATIC_ROOT is missing; tests never collectstatic,
# they serve through the finders, so give them an empty private root.
STATIC_ROOT = VAR_DIR / "test" / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not the in-memory default: threads then get SQLite's real locking (WAL, busy
    # timeout), as the web server, worker and runner do in `make run`. pytest-django adds the
    # xdist worker suffix to the name.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test" / "test-manifold.sqlite3")}
