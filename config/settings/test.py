"""Test settings: the same stack as dev (or PostgreSQL/Redis when MANIFOLD_* says so)."""

import hashlib
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

# pytest-xdist workers, and test runs of other checkouts on the same machine, share Redis and
# PostgreSQL: give each worker of each checkout its own channel namespace and test database, so
# group "team-1" of one run's database never reaches another run's sockets.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
_CHECKOUT = hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:8]
if REDIS_URL:
    CHANNEL_LAYERS["default"]["CONFIG"] = {
        "hosts": [REDIS_URL],
        "prefix": f"manifold-test-{_CHECKOUT}-{_WORKER}",
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
else:
    # pytest-django adds the xdist worker suffix (test_manifold_<checkout>_gw0).
    DATABASES["default"]["TEST"] = {"NAME": f"test_manifold_{_CHECKOUT}"}

# Uploaded models of this worker (tests that look at the files override it with tmp_path).
ARTIFACT_DIR = VAR_DIR / "test" / f"artifacts-{_WORKER}"
