"""mcsite settings: everything that differs between machines comes from the
environment (SPEC §8), read strictly — a bad value stops start-up with a clear
message instead of running with a guess."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()


def env_bool(name: str, default: bool) -> bool:
    raw = env.str(name, default="")
    if raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def env_path(name: str, default: Path) -> Path:
    raw = env.str(name, default="")
    return Path(raw).expanduser().resolve() if raw else default


DEBUG = env_bool("MCSITE_DEBUG", False)
TESTING = env_bool("MCSITE_TESTING", False)

SECRET_KEY = env.str("MCSITE_SECRET_KEY", default="")
if not SECRET_KEY:
    # A development machine gets a key generated once and kept under var/;
    # production sets MCSITE_SECRET_KEY (it also protects stored secrets).
    key_file = VAR_DIR / "secret_key"
    if key_file.exists():
        SECRET_KEY = key_file.read_text().strip()
    else:
        from django.core.management.utils import get_random_secret_key

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        SECRET_KEY = get_random_secret_key()
        key_file.write_text(SECRET_KEY)
        key_file.chmod(0o600)
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("MCSITE_SECRET_KEY must be at least 32 characters long")

ALLOWED_HOSTS = env.list("MCSITE_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("MCSITE_CSRF_TRUSTED_ORIGINS", default=[])

MCSITE_PORT = env_int("MCSITE_PORT", 5000, 1, 65535)
MCSITE_SERVERS_ROOT = env_path("MCSITE_SERVERS_ROOT", VAR_DIR / "servers")
MCSITE_BACKUP_ROOT = env_path("MCSITE_BACKUP_ROOT", VAR_DIR / "backups")
MCSITE_LOG_DIR = env_path("MCSITE_LOG_DIR", BASE_DIR / "logs")
MCSITE_RUN_DIR = env_path("MCSITE_RUN_DIR", VAR_DIR / "run")
MCSITE_TIME_ZONE = env.str("MCSITE_TIME_ZONE", default="UTC")
MCSITE_ALERT_URLS = env.list("MCSITE_ALERT_URLS", default=[])
MCSITE_ALERT_EMAILS = env.list("MCSITE_ALERT_EMAILS", default=[])
MCSITE_NODE = env.str("MCSITE_NODE", default="default")
# Nodes (issue #15): every node's worker reports every N seconds; silent for 3 reports it is down.
MCSITE_NODE_HEARTBEAT_SECONDS = env_int("MCSITE_NODE_HEARTBEAT_SECONDS", 30, 5, 3600)
# How long the web tier waits for a node to answer a start, stop or folder check before answering 202.
MCSITE_NODE_CALL_WAIT_SECONDS = env_int("MCSITE_NODE_CALL_WAIT_SECONDS", 10, 0, 120)
MCSITE_METRICS_TOKEN = env.str("MCSITE_METRICS_TOKEN", default="")
# Extra RCON hosts a non-admin may use (loopback, the server's own node, always is).
MCSITE_RCON_ALLOWED_HOSTS = env.list("MCSITE_RCON_ALLOWED_HOSTS", default=[])
# The game host comes first (issue #16): the Celery worker (backups, restores, verifications and its
# other tasks) runs at this niceness (0-19) and I/O priority (idle, best-effort:0-7, none = leave as is), on at most
# MCSITE_BACKUP_THREADS threads per operation (0 = one per core).
MCSITE_BACKUP_NICE = env_int("MCSITE_BACKUP_NICE", 10, 0, 19)
MCSITE_BACKUP_IO_PRIORITY = env.str("MCSITE_BACKUP_IO_PRIORITY", default="best-effort:7")
MCSITE_BACKUP_THREADS = env_int("MCSITE_BACKUP_THREADS", 0, 0, 1024)
# gzip backups' level: 6 like `gzip` (zlib-ng, and ISA-L for blocks where a probe finds its output within
# 0.5 % of the level's: region files); 1 is the fast level (ISA-L on every block, larger on text).
MCSITE_GZIP_LEVEL = env_int("MCSITE_GZIP_LEVEL", 6, 1, 9)
try:
    from backups.engine.priority import check_io as _check_io

    MCSITE_BACKUP_IO_PRIORITY = _check_io(MCSITE_BACKUP_IO_PRIORITY)
except ValueError as _error:
    raise ImproperlyConfigured(f"MCSITE_BACKUP_IO_PRIORITY: {_error}") from None
# API tokens stop working this many days after they were issued (issue #11).
MCSITE_TOKEN_MAX_AGE_DAYS = env_int("MCSITE_TOKEN_MAX_AGE_DAYS", 90, 1, 3650)

try:
    import zoneinfo

    zoneinfo.ZoneInfo(MCSITE_TIME_ZONE)
except Exception:  # noqa: BLE001 — any failure means the name is unusable
    raise ImproperlyConfigured(f"MCSITE_TIME_ZONE is not a known time zone: {MCSITE_TIME_ZONE!r}") from None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "axes",  # login throttling (mcsite/login_throttle.py)
    "mcsite",
    "servers",
    "backups",
]

MIDDLEWARE = [
    # Outermost, so errors raised by any other middleware (a bad Host header,
    # CSRF) still reach an /api/ client as the JSON envelope.
    "mcsite.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a login that django-axes refused into the lockout page (429).
    "axes.middleware.AxesMiddleware",
]

# django-axes' backend first: it refuses a locked login before any password check.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "mcsite.urls"
WSGI_APPLICATION = "mcsite.wsgi.application"

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
                "mcsite.context_processors.site",
            ],
        },
    },
]

DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_path("MCSITE_SQLITE_PATH", VAR_DIR / "db.sqlite3"),
            # The web server and the Celery worker share this file: WAL lets
            # readers run beside one writer, IMMEDIATE avoids upgrade deadlocks.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            "TEST": {"NAME": env.str("MCSITE_SQLITE_TEST_PATH", default="") or None},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = MCSITE_TIME_ZONE
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
APPEND_SLASH = False  # API paths accept both forms themselves; no redirects of POSTs
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "server-list"
LOGOUT_REDIRECT_URL = "login"

# Cache: Redis when the broker is Redis (shared throttles across processes),
# otherwise a file cache under var/ that every local process shares.
CACHE_URL = env.str("CACHE_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if not CACHE_URL and CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CACHE_URL = CELERY_BROKER_URL
if CACHE_URL:
    CACHES = {"default": env.cache_url_config(CACHE_URL)}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

EMAIL_BACKEND = env.str("MCSITE_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("MCSITE_FROM_EMAIL", default="mcsite@localhost")
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))

# --- REST framework -----------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "mcsite.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "mcsite.api.renderers.EnvelopeJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "mcsite.api.exceptions.api_exception_handler",
    "DEFAULT_METADATA_CLASS": "mcsite.api.renderers.DescriptionOnlyMetadata",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "mcsite.api.pagination.EnvelopePagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        # DRF's own, keyed on the client address of mcsite/client_ip.py
        "mcsite.api.throttling.AnonRateThrottle",
        "mcsite.api.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("MCSITE_THROTTLE_ANON", default="60/min"),
        "user": env.str("MCSITE_THROTTLE_USER", default="1200/min"),
        "backup_trigger": env.str("MCSITE_THROTTLE_TRIGGER", default="30/hour"),
        "restore": env.str("MCSITE_THROTTLE_RESTORE", default="20/hour"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "mcsite API",
    "DESCRIPTION": "Backups of Minecraft Java servers: schedules, runs, verification, restore.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "mcsite.api.schema.envelope_postprocessing_hook",
    ],
}

# --- Celery -------------------------------------------------------------------
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = MCSITE_NODE
CELERY_BACKUP_SOFT_TIME_LIMIT = env_int("MCSITE_BACKUP_SOFT_TIME_LIMIT", 6 * 3600, 60)
CELERY_BACKUP_TIME_LIMIT = CELERY_BACKUP_SOFT_TIME_LIMIT + 600
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # kombu's default is ./control
        "store_processed": False,
    }
else:
    # Redis redelivers an unacknowledged task after the visibility timeout;
    # it must outlast the longest backup or a running backup would start twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_BACKUP_TIME_LIMIT + 3600}

# --- Logging ------------------------------------------------------------------
MCSITE_LOG_DIR.mkdir(parents=True, exist_ok=True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # One record, one line: messages are escaped (mcsite/logfmt.py, issue #11).
        "event": {
            "()": "mcsite.logfmt.OneLineFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "event"},
        "app_file": {
            "class": "logging.handlers.WatchedFileHandler",
            "filename": str(MCSITE_LOG_DIR / "app.log"),
            "formatter": "event",
        },
    },
    "loggers": {
        "mcsite": {"handlers": ["console", "app_file"], "level": "INFO", "propagate": False},
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "celery": {"handlers": ["console", "app_file"], "level": "INFO", "propagate": False},
        # The engine (Django-free) logs as backups.engine: its priority and native-library notes.
        "backups.engine": {"handlers": ["console", "app_file"], "level": "INFO", "propagate": False},
        # django-axes: one WARNING per failed login (username and address masked)
        "axes": {"handlers": ["console", "app_file"], "level": "WARNING", "propagate": False},
    },
}

# --- Security ----------------------------------------------------------------
# The client's address is the socket's; X-Forwarded-For is read only when the
# socket's peer is one of these proxies (IPs or CIDRs), see mcsite/client_ip.py.
try:
    from mcsite.client_ip import parse_networks

    MCSITE_TRUSTED_PROXIES = parse_networks(env.list("MCSITE_TRUSTED_PROXIES", default=[]))
except ValueError as error:
    raise ImproperlyConfigured(f"MCSITE_TRUSTED_PROXIES: {error}") from None

# Login throttling at every login door (mcsite/login_throttle.py, django-axes):
# failures per (username, client address), a higher cap per client address.
MCSITE_LOGIN_FAILURE_LIMIT = env_int("MCSITE_LOGIN_FAILURE_LIMIT", 5, 1, 1000)
MCSITE_LOGIN_FAILURE_LIMIT_PER_ADDRESS = env_int("MCSITE_LOGIN_FAILURE_LIMIT_PER_ADDRESS", 50, 1, 100_000)
if MCSITE_LOGIN_FAILURE_LIMIT_PER_ADDRESS < MCSITE_LOGIN_FAILURE_LIMIT:
    raise ImproperlyConfigured(
        f"MCSITE_LOGIN_FAILURE_LIMIT_PER_ADDRESS ({MCSITE_LOGIN_FAILURE_LIMIT_PER_ADDRESS}) must be at least "
        f"MCSITE_LOGIN_FAILURE_LIMIT ({MCSITE_LOGIN_FAILURE_LIMIT})"
    )
MCSITE_LOGIN_COOLOFF_MINUTES = env_int("MCSITE_LOGIN_COOLOFF_MINUTES", 15, 1, 7 * 24 * 60)
AXES_HANDLER = "mcsite.login_throttle.LoginThrottleHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_FAILURE_LIMIT = "mcsite.login_throttle.failure_limit"
AXES_COOLOFF_TIME = "mcsite.login_throttle.cool_off"
AXES_CLIENT_IP_CALLABLE = "mcsite.client_ip.login_client"  # IPv6 counted by its /64
AXES_LOCKOUT_CALLABLE = "mcsite.login_throttle.lockout_response"
AXES_RESET_ON_SUCCESS = False  # the handler forgets only the (username, address) that logged in
AXES_VERBOSE = False  # mcsite.login_throttle logs and audits lockouts itself

SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if env_bool("MCSITE_HTTPS", False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
