"""Settings read from the environment.

Defaults give the embedded set-up (SQLite file, Celery eager, DEBUG on).
Production: DJANGO_ENV=production, SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL, REDIS_URL.
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


PRODUCTION = os.environ.get("DJANGO_ENV", "development") == "production"
DEBUG = env_bool("DEBUG", not PRODUCTION)
SECRET_KEY = os.environ.get("SECRET_KEY") or (
    "" if PRODUCTION else "dev-only-insecure-key-do-not-use-in-production-0123456789abcdef"
)
if PRODUCTION and len(SECRET_KEY) < 50:
    raise RuntimeError("SECRET_KEY (50+ characters) must be set when DJANGO_ENV=production")
if PRODUCTION and os.environ.get("SERVICING_CLOCK_FILE"):
    # A movable clock would let whoever can write that file move outreach past the legal time windows.
    raise RuntimeError("SERVICING_CLOCK_FILE is for tests and drills; it is refused when DJANGO_ENV=production")
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "servicing",
    "cases",
    "compliance",
    "supervision",
    "reminders",
    "scoring",
    "borrowers",
    "anymail",  # email provider backends and their signed tracking webhooks (borrowers.receipts)
    "finance",
]

# Money (finance/): the order a payment pays the balance parts when a lender has published none.
FINANCE_DEFAULT_ALLOCATION_ORDER = ("costs", "fees", "interest", "principal")
# Settlement terms when a lender has published none: least % of the balance by bucket without approval.
FINANCE_DEFAULT_SETTLEMENT_RULES = {
    "min_percent": {"M1": 95, "M2": 90, "M3": 85, "M4": 80, "M5": 75, "M6": 70, "M7+": 60},
    "default_min_percent": 100, "max_instalments": 6,
}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "servicing.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
WSGI_APPLICATION = "servicing.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60" if PRODUCTION else "0")),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Concurrent writers wait instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "cases.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["servicing.auth.ThrottledModelBackend"]
# (events, seconds): failed sign-ins per username, then refused until the window ends; lender
# sign-ups per client address (servicing/throttle.py).
THROTTLE_LOGIN_FAILURES = (10, 15 * 60)
THROTTLE_LENDER_SIGNUPS = (5, 60 * 60)
# Borrower page (borrowers/): identity attempts per link and per client address; link life; session
# length; dispute answer deadline; evidence upload limits; inbound SMS webhook HMAC secret.
THROTTLE_BORROWER_TOKEN = (5, 60 * 60)
THROTTLE_BORROWER_ADDRESS = (30, 60 * 60)
BORROWER_LINK_TTL_HOURS = int(os.environ.get("BORROWER_LINK_TTL_HOURS", "72"))
BORROWER_SESSION_SECONDS = int(os.environ.get("BORROWER_SESSION_SECONDS", "1800"))
BORROWER_DISPUTE_DAYS = int(os.environ.get("BORROWER_DISPUTE_DAYS", "30"))
BORROWER_COMPLAINT_DAYS = int(os.environ.get("BORROWER_COMPLAINT_DAYS", "15"))  # GB/T 45251: answer within a set time
BORROWER_EVIDENCE_MAX_BYTES = 5 * 1024 * 1024
BORROWER_EVIDENCE_TYPES = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}
BORROWER_BASE_URL = os.environ.get("BORROWER_BASE_URL", "")
SMS_WEBHOOK_SECRET = os.environ.get("SMS_WEBHOOK_SECRET", "")
# Twilio-format webhooks (form parameters + X-Twilio-Signature, HMAC-SHA1 keyed with SMS_API_TOKEN) are
# signed over the URL Twilio called. Behind a proxy or TLS terminator that URL is not the one Django sees
# (http vs https, an internal host or port, a stripped path prefix): set the public base, e.g.
# "https://collect.example.com" (no trailing slash needed); the request's path and query are appended.
# Empty: request.build_absolute_uri() (needs USE_X_FORWARDED_HOST / SECURE_PROXY_SSL_HEADER right).
SMS_WEBHOOK_PUBLIC_URL_BASE = os.environ.get("SMS_WEBHOOK_PUBLIC_URL_BASE", "")
# SMS provider for reminders.senders.HttpSmsSender (Twilio's Messages API shape; any compatible base URL)
SMS_API_BASE_URL = os.environ.get("SMS_API_BASE_URL", "")
SMS_API_ACCOUNT = os.environ.get("SMS_API_ACCOUNT", "")
SMS_API_TOKEN = os.environ.get("SMS_API_TOKEN", "")
SMS_API_FROM = os.environ.get("SMS_API_FROM", "")
SMS_STATUS_CALLBACK_URL = os.environ.get("SMS_STATUS_CALLBACK_URL", "")
# Email: SMTP by default; an anymail backend (e.g. anymail.backends.postmark.EmailBackend) by setting
# EMAIL_BACKEND and ANYMAIL_* (the provider's key and its webhook secret, "user:password").
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
ANYMAIL = {k[len("ANYMAIL_"):]: v for k, v in os.environ.items() if k.startswith("ANYMAIL_")}
# Reverse proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For is believed when
# finding the client's address for the sign-up limit; empty: REMOTE_ADDR is the client.
TRUSTED_PROXIES = [p.strip() for p in os.environ.get("TRUSTED_PROXIES", "").split(",") if p.strip()]
# Sessions: 8 hours by default (a shift); staff roles' sessions also end when the browser closes
# (servicing/auth.py). Lender users keep the cookie until it expires.
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(8 * 60 * 60)))
SESSION_BROWSER_CLOSE_ROLES = ("agent", "supervisor", "admin")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "servicing.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Debt servicing API",
    "DESCRIPTION": "Accounts, contact attempts and the compliance check every outreach passes.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "servicing.schema.add_error_responses"],
    # Fields of the same name with different choices get stable enum names (check --deploy fails on W001).
    "ENUM_NAME_OVERRIDES": {
        "ContactAttemptOutcomeEnum": "cases.models.ContactAttempt.Outcome",
        "ReportableOutcomeEnum": "cases.api.serializers._REPORTABLE",
        "ContactAttemptStateEnum": "cases.models.ContactAttempt.State",
        "PlacementBatchStateEnum": "cases.models.PlacementBatch.State",
    },
}

# Celery: a real broker when REDIS_URL is set, otherwise tasks run in-process (eager).
REDIS_URL = os.environ.get("REDIS_URL", "")
# Shared cache, used for the sign-in and sign-up limits (servicing/throttle.py): set CACHE_URL
# (e.g. redis://127.0.0.1:6379/1, a database apart from the broker's) in production so every web
# process counts together; without it each process keeps its own counters in memory.
CACHE_URL = os.environ.get("CACHE_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL,
                "KEY_PREFIX": "servicing"}
    if CACHE_URL else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "servicing")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Placement imports (cases/importers/services.py): a large file is applied by this many PostgreSQL
# connections at once, each taking a share of the borrowers, once it has this many valid rows per
# connection. 1 applies every file in one transaction.
PLACEMENT_APPLY_WORKERS = int(os.environ.get("PLACEMENT_APPLY_WORKERS", "2"))
PLACEMENT_ROWS_PER_WORKER = int(os.environ.get("PLACEMENT_ROWS_PER_WORKER", "50000"))
# Placement file limits (docs/placement-format.md, "Limits"): past one the upload is refused (size)
# or the batch fails with a message naming the limit and the line.
PLACEMENT_MAX_FILE_BYTES = int(os.environ.get("PLACEMENT_MAX_FILE_BYTES", "200000000"))
PLACEMENT_MAX_ROWS = int(os.environ.get("PLACEMENT_MAX_ROWS", "2000000"))
PLACEMENT_MAX_COLUMNS = int(os.environ.get("PLACEMENT_MAX_COLUMNS", "200"))
PLACEMENT_MAX_CELL_CHARS = int(os.environ.get("PLACEMENT_MAX_CELL_CHARS", "10000"))
PLACEMENT_MAX_LINES_PER_ROW = int(os.environ.get("PLACEMENT_MAX_LINES_PER_ROW", "20"))
PLACEMENT_MAX_EMPTY_ROWS = int(os.environ.get("PLACEMENT_MAX_EMPTY_ROWS", "10000"))
PLACEMENT_MAX_READ_SECONDS = int(os.environ.get("PLACEMENT_MAX_READ_SECONDS", "1800"))
PLACEMENT_XLSX_MAX_UNCOMPRESSED_BYTES = int(os.environ.get("PLACEMENT_XLSX_MAX_UNCOMPRESSED_BYTES", str(512 << 20)))
PLACEMENT_XLSX_MAX_RATIO = int(os.environ.get("PLACEMENT_XLSX_MAX_RATIO", "200"))
# Stuck batches: a batch "processing"/"applying" with no heartbeat for this long (and, on PostgreSQL,
# no run holding its lock) is re-queued by the sweep, at most PLACEMENT_MAX_REQUEUES times, then failed.
PLACEMENT_STALE_SECONDS = int(os.environ.get("PLACEMENT_STALE_SECONDS", "900"))
PLACEMENT_MAX_REQUEUES = int(os.environ.get("PLACEMENT_MAX_REQUEUES", "3"))
# Placement jobs go through an outbox: after commit one publish is tried with this timeout (seconds);
# the sweep sends what is left once the broker is back.
PLACEMENT_DISPATCH_TIMEOUT = float(os.environ.get("PLACEMENT_DISPATCH_TIMEOUT", "2"))

# Reminders (reminders/senders.py): pluggable backends like Django's email backends. The file
# backend (default) keeps one file per message id, so a retry can tell whether a message already went.
REMINDER_SMS_BACKEND = os.environ.get("REMINDER_SMS_BACKEND", "reminders.senders.FileSender")
REMINDER_EMAIL_BACKEND = os.environ.get("REMINDER_EMAIL_BACKEND", "reminders.senders.FileSender")
REMINDER_OUTBOX_DIR = Path(os.environ.get("REMINDER_OUTBOX_DIR", BASE_DIR / "var" / "outbox"))
REMINDER_FROM_EMAIL = os.environ.get("REMINDER_FROM_EMAIL", "reminders@localhost")
REMINDER_MAX_ATTEMPTS = int(os.environ.get("REMINDER_MAX_ATTEMPTS", "5"))
REMINDER_RETRY_BASE_SECONDS = int(os.environ.get("REMINDER_RETRY_BASE_SECONDS", "60"))
# A "sending" row claimed longer ago than this belongs to a dead worker and is recovered by the sweep.
REMINDER_STALE_SENDING_SECONDS = int(os.environ.get("REMINDER_STALE_SENDING_SECONDS", "300"))
# Automated reminders go out only in this local window (in every borrower zone), stricter than the
# law (CN forbids 22:00-08:00; a 21:30 SMS is lawful but unwelcome). Empty disables it.
REMINDER_SEND_WINDOW = os.environ.get("REMINDER_SEND_WINDOW", "08:00-21:00")

# Risk scoring (scoring/): a lender's accounts get the trained model's score once the training data
# holds this many labelled outcomes of that lender; until then the transparent rule score (cold start).
SCORING_MIN_OUTCOMES = int(os.environ.get("SCORING_MIN_OUTCOMES", "200"))
SCORING_HORIZON_DAYS = 30  # the label: a payment within this many days of the snapshot
SCORING_TRAIN_SNAPSHOTS = 3  # training snapshots, 30 days apart

# Audit anchoring (compliance/audit.py): signed checkpoints of every chain head, appended to JSON-lines
# files in this directory (keep it outside the database's reach: another volume, object storage with
# retention, or chattr +a). The HMAC key lives only here (env), never in the database; production
# must set it (writing checkpoints fails without it), development uses a fixed throw-away key.
AUDIT_CHECKPOINT_DIR = Path(os.environ.get("AUDIT_CHECKPOINT_DIR", BASE_DIR / "var" / "audit-checkpoints"))
AUDIT_CHECKPOINT_KEY = os.environ.get("AUDIT_CHECKPOINT_KEY") or ("" if PRODUCTION else "dev-only-audit-checkpoint-key")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}

# Security: strict in production, relaxed only for the local HTTP dev server.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
