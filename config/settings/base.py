"""Settings shared by every mode.

Everything a deployment changes comes from MANIFOLD_* variables.
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("MANIFOLD_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


SECRET_KEY = os.environ.get("MANIFOLD_SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = False
ALLOWED_HOSTS = env_list("MANIFOLD_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("MANIFOLD_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "guardian",
    "channels",
    "apps.core",
    "apps.accounts",
    "apps.teams",
    "apps.rbac",
    "apps.audit",
    "apps.flows",
    "apps.snapshots",
    "apps.devices",
]

MIDDLEWARE = [
    # Before anything reads the body: an oversize request is a 413 (JSON under /api/).
    "apps.core.middleware.request_size_limit_middleware",
    "django.middleware.security.SecurityMiddleware",
    "apps.core.middleware.content_security_policy_middleware",
    # IP, user agent and request id of every audited write (apps.core.audit_context).
    "apps.core.audit_context.AuditContextMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# Strict: no inline script, style or event handler anywhere (templates load static files; htmx
# runs with includeIndicatorStyles off, see base.html). 'self' covers the same-origin websocket.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("MANIFOLD_DATABASE_URL", f"sqlite:///{VAR_DIR / 'manifold.sqlite3'}")
# No persistent connections: under ASGI every request runs its ORM work in a fresh executor
# thread, so a connection kept for reuse (CONN_MAX_AGE > 0) is never reused and they pile up
# until PostgreSQL refuses more (41 left open by one client in 10 s; 500s at 20 clients).
# Production reuses connections through psycopg's pool instead (prod.py).
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Embedded mode keeps its database, queues and channel layer under VAR_DIR; SQLite cannot
    # create the folder itself.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the web server, the worker and the runner link read while one writes;
    # IMMEDIATE transactions take the write lock up front instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("MANIFOLD_STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Browser libraries come from npm (package.json, `npm ci`), never from a CDN.
    ("fonts/inter", BASE_DIR / "node_modules" / "@fontsource-variable" / "inter"),
]

EMAIL_BACKEND = os.environ.get(
    "MANIFOLD_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
# Absolute base of links in emails sent outside a request (e.g. invitations from a task).
MANIFOLD_BASE_URL = os.environ.get("MANIFOLD_BASE_URL", "http://127.0.0.1:8000")
DEFAULT_FROM_EMAIL = os.environ.get("MANIFOLD_FROM_EMAIL", "manifold@localhost")
# Whether anyone may create an account without an invitation, until a platform admin decides:
# only the first value of the installation's settings row; from then on that row is the store.
OPEN_SIGNUP_DEFAULT = env_bool("MANIFOLD_OPEN_SIGNUP", False)

REDIS_URL = os.environ.get("MANIFOLD_REDIS_URL", "")
# The cache holds the sign-in/reset/token throttle counters (apps.accounts.throttle): shared by
# every process, Redis in production, a file cache under VAR_DIR in embedded mode.
CACHES: dict[str, dict[str, object]]
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "apps.core.cache.SharedRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "manifold",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
# Signed checkpoints of the audit chain heads, outside the database (apps.audit.anchors): point
# the file at storage the database's administrators cannot rewrite.
AUDIT_ANCHOR_FILE = os.environ.get(
    "MANIFOLD_AUDIT_ANCHOR_FILE", str(VAR_DIR / "audit" / "anchors.jsonl")
)
AUDIT_ANCHOR_KEY = os.environ.get("MANIFOLD_AUDIT_ANCHOR_KEY", "")
# The platform key that encrypts every team's signing and data keys (apps.snapshots.keys):
# base64 of 32 random bytes. Unset: derived from SECRET_KEY, so changing SECRET_KEY would make
# every stored team key unreadable; production requires it.
MANIFOLD_KEY_ENCRYPTION_KEY = os.environ.get("MANIFOLD_KEY_ENCRYPTION_KEY", "")
# Uploaded ONNX models, content-addressed (<dir>/<sha256[:2]>/<sha256>.onnx), and their limit.
ARTIFACT_DIR = Path(os.environ.get("MANIFOLD_ARTIFACT_DIR", VAR_DIR / "artifacts"))
MAX_MODEL_BYTES = int(os.environ.get("MANIFOLD_MAX_MODEL_BYTES", str(256 * 1024 * 1024)))
# Hosted instances (apps.devices.hosting): loopback ports they get (two each: engine and status
# page) and the platform address they register and link against (`make run` passes its own).
HOSTED_PORTS = os.environ.get("MANIFOLD_HOSTED_PORTS", "18800-18899")
HOSTED_PLATFORM_URL = os.environ.get("MANIFOLD_HOSTED_PLATFORM_URL", "http://127.0.0.1:8000")
# Where the local driver keeps each instance (data directory, pid file, log): the reconciler
# writes there, the platform reads the logs from there.
HOSTED_ROOT = Path(os.environ.get("MANIFOLD_HOSTED_ROOT", str(VAR_DIR / "hosted")))
# One request body at most (a large flow export fits); larger ones get 413
# (apps.core.middleware, apps.core.limits.BoundedJSONParser).
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Celery: Redis in production; without Redis a filesystem transport that crosses processes.
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 300}
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(VAR_DIR / "celery" / "queue"),
        "data_folder_out": str(VAR_DIR / "celery" / "queue"),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        # kombu's default is ./control, relative to whatever directory the process started in.
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
CELERY_RESULT_BACKEND = None
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celery" / "beat-schedule")

# Channels: Redis in production; without Redis a SQLite file that crosses processes
# (apps/core/channel_layers.py explains why not the in-memory layer or channels-lite).
# apps/core/redis_layer.py explains why not channels_redis' own client settings.
CHANNEL_LAYERS: dict[str, dict[str, object]]
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "apps.core.redis_layer.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "manifold"},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "apps.core.channel_layers.SQLiteChannelLayer",
            "CONFIG": {"path": str(VAR_DIR / "channels.sqlite3"), "polling_interval": 0.05},
        }
    }

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.ListPagination",
    # Bounded size and depth; forms and uploads as DRF's defaults.
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.limits.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.BearerTokenAuthentication",
        "apps.accounts.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "apps.accounts.authentication.ReadOnlyTokensDoNotWrite",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Manifold API",
    "DESCRIPTION": "Teams, applications, members, roles, tokens and the audit trail.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from the installed package, never a CDN: plant networks are air-gapped.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name per choice set, whichever serializer or model field carries it.
    "ENUM_NAME_OVERRIDES": {
        # Labels are part of a set's identity, so the bare-value and labelled forms both appear.
        "RoleEnum": "apps.rbac.permissions.ROLES",
        "RoleChoiceEnum": "apps.rbac.permissions.ROLE_CHOICES",
        "OverrideRoleEnum": "apps.rbac.permissions.OVERRIDE_ROLES",
        "OverrideRoleChoiceEnum": "apps.rbac.permissions.OVERRIDE_CHOICES",
        # Two "status" sets: each named, so neither gets a hashed name.
        "DeviceStatusEnum": "apps.devices.models.DeviceStatus",
        "InvitationStatusEnum": "apps.teams.models.InvitationStatus",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("MANIFOLD_LOG_LEVEL", "INFO")},
}
