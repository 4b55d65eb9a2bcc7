"""Herald settings, read from the environment.

Every value comes from an environment variable through a typed helper that
raises ImproperlyConfigured naming the variable when the value is bad.
`herald` (the command) starts embedded PostgreSQL/Redis and sets
DATABASE_URL / REDIS_URL before this module is read when they are unset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from herald.devservices import data_dir
from herald.env import (
    RedisSentinel,
    check_redis_url,
    env_bool,
    env_int,
    env_list,
    env_str,
    env_url,
    parse_database_url,
    parse_redis_sentinel,
)

BASE_DIR = Path(__file__).resolve().parents[2]

DEBUG = env_bool("DEBUG", default=False)
# HERALD_ENV=production turns on the checks that refuse an unsafe start.
HERALD_ENV = env_str("HERALD_ENV", "development") or "development"
if HERALD_ENV not in ("development", "test", "production"):
    raise ImproperlyConfigured(f"HERALD_ENV must be development, test or production, got {HERALD_ENV!r}")
PRODUCTION = HERALD_ENV == "production"

_DEV_SECRET = "herald-insecure-development-secret-key-do-not-use-in-production"  # noqa: S105 - refused in production
SECRET_KEY = env_str("SECRET_KEY") or ""
if PRODUCTION:
    if not SECRET_KEY or SECRET_KEY == _DEV_SECRET or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured("SECRET_KEY must be set to a random value of at least 32 characters in production")
    if DEBUG:
        raise ImproperlyConfigured("DEBUG must be off in production")
elif not SECRET_KEY:
    SECRET_KEY = _DEV_SECRET

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if not PRODUCTION else [])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set in production")

HERALD_PUBLIC_URL = env_url("HERALD_PUBLIC_URL", "http://127.0.0.1:8000")

# --- database ---------------------------------------------------------------

_database_url = env_str("DATABASE_URL")
if not _database_url:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Run Herald through the `herald` command (it starts an embedded "
        "PostgreSQL when DATABASE_URL is unset) or set DATABASE_URL=postgresql://user@host:5432/db"
    )
_db = parse_database_url("DATABASE_URL", _database_url)
# Under ASGI every request runs in its own thread context, so a persistent
# connection (CONN_MAX_AGE > 0) is never reused and leaks until "too many
# clients": connections come from a psycopg pool per process instead.
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 10, minimum=0, maximum=500)
_conn_max_age = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)  # used only without a pool
_pool_options = {"pool": {"min_size": 1, "max_size": DATABASE_POOL_SIZE, "timeout": 10}} if DATABASE_POOL_SIZE else {}
# The send engine (notifications.sending) keeps server-side prepared statements on its connections. Behind a
# pooler in transaction mode (PgBouncer < 1.21 and the like) a session's statements are not there on the
# next transaction: set DATABASE_PREPARED_STATEMENTS=false, and each send plans its SQL anew.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
# The send engine's own connections per process (notifications.sending), all opened up front.
HERALD_INGEST_POOL_SIZE = env_int("HERALD_INGEST_POOL_SIZE", 4, minimum=1, maximum=100)
# Per-send steps attached at start (notifications.sending.steps): dotted paths of classes made with no argument.
HERALD_SEND_STEPS = env_list("HERALD_SEND_STEPS", [])
# gc.freeze() after start-up in the ASGI process (herald.asgi).
HERALD_GC_FREEZE = env_bool("HERALD_GC_FREEZE", True)
DATABASES = {
    "default": {
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": _db.name,
        "USER": _db.user or "postgres",
        "PASSWORD": _db.password,
        "HOST": _db.host,
        "PORT": _db.port,
        "CONN_MAX_AGE": 0 if DATABASE_POOL_SIZE else _conn_max_age,
        "CONN_HEALTH_CHECKS": not DATABASE_POOL_SIZE,
        "OPTIONS": {**_db.options, **_pool_options},
        "TEST": {"NAME": env_str("DATABASE_TEST_NAME") or f"test_{_db.name}"},
    }
}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)

# --- redis, cache, channel layer -------------------------------------------

# Either REDIS_URL names the one Redis, or Sentinel names its master (docs/scaling.md, "Sentinel"):
# HERALD_REDIS_SENTINELS=host:26379,host2:26379 and HERALD_REDIS_SENTINEL_MASTER=mymaster, with REDIS_URL
# optional beside them for the master's password and database (redis://:password@mymaster/0: its host is the
# master's name, as redis-rb and django-redis write it). Every Redis client of Herald's own comes from
# herald.redis_clients, which asks the sentinels; the cache and the channel layer are configured for them below.
_redis_url = env_str("REDIS_URL")
_sentinels = env_str("HERALD_REDIS_SENTINELS")
REDIS_SENTINEL: RedisSentinel | None = None
if _sentinels:
    REDIS_SENTINEL = parse_redis_sentinel(
        sentinels=_sentinels,
        master_name=env_str("HERALD_REDIS_SENTINEL_MASTER"),
        redis_url=_redis_url,
        sentinel_password=env_str("HERALD_REDIS_SENTINEL_PASSWORD"),
    )
    REDIS_URL = REDIS_SENTINEL.url()
else:
    if env_str("HERALD_REDIS_SENTINEL_MASTER"):
        raise ImproperlyConfigured("HERALD_REDIS_SENTINEL_MASTER is set but HERALD_REDIS_SENTINELS is not")
    if not _redis_url:
        raise ImproperlyConfigured(
            "REDIS_URL is not set. Run Herald through the `herald` command (it starts an embedded Redis "
            "when REDIS_URL is unset) or set REDIS_URL=redis://host:6379/0 (or HERALD_REDIS_SENTINELS)"
        )
    REDIS_URL = check_redis_url("REDIS_URL", _redis_url)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Keys carry the active schema, so one tenant never reads another's entry.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        # Through Sentinel, a pool that asks the sentinels for the master (LOCATION only names it).
        "OPTIONS": {"pool_class": "herald.redis_clients.SentinelCachePool"} if REDIS_SENTINEL else {},
    }
}

# Each process joins every group ONCE, for all its sockets (notifications.hub),
# so the layer carries one copy of an event per process, not per socket.
# PubSub (default): a group is a Redis pub/sub channel; no per-channel capacity
# to overflow, no group membership to expire (a subscription lives as long as
# the process's connection); what is published while a process reconnects is
# lost, and the cursor replay covers it. Chosen with infra/bench/realtime.py
# (one process, 5,000 sockets, the hub on either layer). One event to one
# socket at 200/s: p50 0.9 / p99 10.7 ms on PubSub, 2.2 / 12.9 ms on core
# (an earlier, busier run: 0.7 / 8.7 against 3.3 / 108.5). Fan-out: 10.4 against
# 14.6 us of server CPU per delivery (earlier 13.0 against 12.4). So PubSub.
# Core (HERALD_CHANNEL_LAYER=core): every event for a process lands in that
# process's ONE hub channel, so `capacity` is per process, not per socket: the
# default 100 silently dropped events above ~1,800 msgs/s (docs/architecture.md, measured); 10,000
# absorbs a burst of that size. `group_expiry` bounds how long a crashed
# process's hub stays in a group; the hub re-adds its groups every
# group_expiry/4, so live members never expire.
HERALD_CHANNEL_LAYER = env_str("HERALD_CHANNEL_LAYER", "pubsub") or "pubsub"
# The channel layer over several Redis servers (docs/scaling.md): each group (and channel) lives on one of them,
# chosen by a consistent hash of its name, the same in every process. Default: REDIS_URL alone.
# Through Sentinel (and no HERALD_CHANNEL_REDIS_URLS), one host: channels-redis's own Sentinel form, whose pool
# asks the sentinels for the master on every new connection, so the layer follows a failover by itself.
HERALD_CHANNEL_HOSTS: list[Any]
if REDIS_SENTINEL and env_str("HERALD_CHANNEL_REDIS_URLS") is None:
    HERALD_CHANNEL_HOSTS = [
        {
            "sentinels": list(REDIS_SENTINEL.sentinels),
            "master_name": REDIS_SENTINEL.master_name,
            "sentinel_kwargs": REDIS_SENTINEL.sentinel_kwargs(socket_timeout=1.0),
            **REDIS_SENTINEL.master_kwargs(),
        }
    ]
else:
    HERALD_CHANNEL_HOSTS = [
        check_redis_url("HERALD_CHANNEL_REDIS_URLS", url) for url in env_list("HERALD_CHANNEL_REDIS_URLS", [REDIS_URL])
    ]
if HERALD_CHANNEL_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": HERALD_CHANNEL_HOSTS},
        }
    }
elif HERALD_CHANNEL_LAYER == "core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": HERALD_CHANNEL_HOSTS,
                "capacity": env_int("HERALD_CHANNEL_CAPACITY", 10_000, minimum=100),
                "group_expiry": env_int("HERALD_GROUP_EXPIRY", 3_600, minimum=60),
                "expiry": 60,
            },
        }
    }
else:
    raise ImproperlyConfigured(f"HERALD_CHANNEL_LAYER must be pubsub or core, got {HERALD_CHANNEL_LAYER!r}")

# --- real-time sockets (docs/realtime-protocol.md) ----------------------------

HERALD_WS_AUTH_TIMEOUT = env_int("HERALD_WS_AUTH_TIMEOUT", 10, minimum=1)  # seconds to send `auth` (4408)
HERALD_WS_IDLE_TIMEOUT = env_int("HERALD_WS_IDLE_TIMEOUT", 90, minimum=1)  # no frame from the client (1001)
HERALD_WS_MAX_FRAME = 64 * 1024  # bytes in one client frame (1009)
HERALD_WS_RATE = env_int("HERALD_WS_RATE", 10, minimum=1)  # client frames per second, sustained (4429)
HERALD_WS_BURST = env_int("HERALD_WS_BURST", 30, minimum=1)  # ... and in a burst
# Frames waiting for one slow socket before it is dropped (it reconnects by cursor);
# above the replay limit so a full replay to a slow client fits.
HERALD_WS_SEND_QUEUE = env_int("HERALD_WS_SEND_QUEUE", 2_000, minimum=10)
# ... and only once it also made no progress for this many seconds (or its queue is 4x that size): a reader
# briefly behind during a burst is not cut off (notifications.hub.SocketWriter).
HERALD_WS_STALL_SECONDS = env_int("HERALD_WS_STALL_SECONDS", 2, minimum=1)
HERALD_WS_REPLAY_LIMIT = env_int("HERALD_WS_REPLAY_LIMIT", 1_000, minimum=1)  # more missed: `reset`
# Failed widget proofs per client address and publishable key, per process (they never spend the
# organisation's budget); over it, 429 from the front until the next token.
HERALD_BAD_PROOF_RATE = env_int("HERALD_BAD_PROOF_RATE", 2, minimum=1)  # per second, sustained
HERALD_BAD_PROOF_BURST = env_int("HERALD_BAD_PROOF_BURST", 20, minimum=1)
# Secret-key lookups in the database (keys not in the shared cache) per client address and process; over it, 429.
HERALD_UNKNOWN_KEY_RATE = env_int("HERALD_UNKNOWN_KEY_RATE", 5, minimum=1)  # per second, sustained
HERALD_UNKNOWN_KEY_BURST = env_int("HERALD_UNKNOWN_KEY_BURST", 50, minimum=1)
# Socket caps, per process (notifications.socket_limits); over any of them the socket closes with 4429.
HERALD_WS_MAX_PER_KEY = env_int("HERALD_WS_MAX_PER_KEY", 10_000, minimum=1)  # sockets of one publishable key
HERALD_WS_MAX_PER_SUBSCRIBER = env_int("HERALD_WS_MAX_PER_SUBSCRIBER", 20, minimum=1)  # authenticated, one subscriber
HERALD_WS_MAX_UNAUTHENTICATED_PER_CLIENT = env_int("HERALD_WS_MAX_UNAUTHENTICATED_PER_CLIENT", 200, minimum=1)
HERALD_WS_CONNECT_RATE = env_int("HERALD_WS_CONNECT_RATE", 100, minimum=1)  # new sockets per second per address
HERALD_WS_CONNECT_BURST = env_int("HERALD_WS_CONNECT_BURST", 500, minimum=1)
HERALD_INBOX_RETENTION_DAYS = env_int("HERALD_INBOX_RETENTION_DAYS", 90, minimum=1)  # older cursor: `reset`
# Billing: organisations (slugs) whose usage is test data, recorded and never billed; quotas on or off (off only
# to measure what they cost: infra/bench/ingest.py --quotas).
HERALD_BILLING_TEST_ORGANIZATIONS = env_list("HERALD_BILLING_TEST_ORGANIZATIONS", ["demo"])
HERALD_QUOTAS = env_bool("HERALD_QUOTAS", True)

# --- tenancy -----------------------------------------------------------------

SHARED_APPS = [
    # herald first: its migrate / migrate_schemas also migrate the template schema.
    "herald",
    "django_tenants",
    "tenants",
    # Background jobs: Procrastinate's tables live in the public schema (herald/tasks.py holds the jobs).
    "procrastinate.contrib.django",
    "billing",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "ninja",
    # The portal: accounts (allauth) and sessions live in the public schema only. The portal comes before
    # allauth so that its templates (allauth/layouts/*) replace allauth's.
    "portal",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
]
TENANT_APPS = [
    "notifications",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Organization"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# The migrated schema new organisations are provisioned from (tenants/provisioning.py).
HERALD_TEMPLATE_SCHEMA = "herald_template"
# One `SET search_path` per tenant switch, not one per query (django-tenants re-issues it after a rollback).
TENANT_LIMIT_SET_CALLS = True
# Spare schemas kept ready so sign-up claims one instead of building one (0 = off).
HERALD_SPARE_SCHEMAS = env_int("HERALD_SPARE_SCHEMAS", 3, minimum=0, maximum=100)

# --- http ----------------------------------------------------------------------

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the API docs' Swagger UI, the demo page's assets) without a separate web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The portal's (Django serves /v1/ without this chain: herald.api_handler).
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.middleware.security_headers",
]
ROOT_URLCONF = "herald.urls"
ASGI_APPLICATION = "herald.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context.portal",
            ]
        },
    }
]
STATIC_URL = "/static/"
# Where `herald collectstatic` writes (the image does it at build time). Outside production it is used only
# once it exists: development and test serve the apps' folders (WHITENOISE_USE_FINDERS below).
_static_root = Path(env_str("HERALD_STATIC_ROOT") or BASE_DIR / "build" / "static")
STATIC_ROOT = _static_root if PRODUCTION or env_str("HERALD_STATIC_ROOT") or _static_root.is_dir() else None
# Production serves what `herald collectstatic` wrote: hashed names (cached for a year by whitenoise) and
# gzip/brotli copies. Development and test read the apps' static folders directly, nothing to collect first.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG and not PRODUCTION
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"

SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- stripe --------------------------------------------------------------------

STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY") or ""
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET") or ""
STRIPE_API_BASE = env_url("STRIPE_API_BASE", "https://api.stripe.com")
if STRIPE_SECRET_KEY and not STRIPE_SECRET_KEY.startswith(("sk_live_", "sk_test_", "rk_live_", "rk_test_")):
    raise ImproperlyConfigured("STRIPE_SECRET_KEY must start with sk_live_, sk_test_, rk_live_ or rk_test_")
if STRIPE_WEBHOOK_SECRET and not STRIPE_WEBHOOK_SECRET.startswith("whsec_"):
    raise ImproperlyConfigured("STRIPE_WEBHOOK_SECRET must start with whsec_")
# The API version Herald speaks and expects its webhook endpoint to be created with (billing.stripe_api).
STRIPE_API_VERSION = env_str("STRIPE_API_VERSION", "2026-10-28.endive") or "2026-10-28.endive"
# Prices of the paid plans (Checkout in subscription mode); a plan without a price cannot be bought.
STRIPE_PRICE_PRO = env_str("STRIPE_PRICE_PRO") or ""
STRIPE_PRICE_SCALE = env_str("STRIPE_PRICE_SCALE") or ""
# The metered price of overage (added to each Checkout), and the Billing Meter it counts.
STRIPE_PRICE_OVERAGE = env_str("STRIPE_PRICE_OVERAGE") or ""
STRIPE_METER_ID = env_str("STRIPE_METER_ID") or ""
STRIPE_METER_EVENT_NAME = env_str("STRIPE_METER_EVENT_NAME", "herald_notifications") or "herald_notifications"

# --- background jobs (Procrastinate) ----------------------------------------------

# Tasks live in herald/tasks.py (the one module that knows every app); workers use psycopg 3 (async) on DATABASES.
PROCRASTINATE_AUTODISCOVER_MODULE_NAME = "tasks"
# An organisation's schema is dropped this long after its owner deleted it.
HERALD_SCHEMA_DELETE_AFTER_DAYS = env_int("HERALD_SCHEMA_DELETE_AFTER_DAYS", 7, minimum=0)

# JSON lines in production (herald.logs: request id, organisation id, route; secrets redacted), text elsewhere.
HERALD_LOG_FORMAT = env_str("HERALD_LOG_FORMAT") or ("json" if PRODUCTION else "text")
if HERALD_LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"HERALD_LOG_FORMAT must be json or text, got {HERALD_LOG_FORMAT!r}")
if HERALD_LOG_FORMAT == "json":
    import logging

    logging.captureWarnings(True)  # a Python warning (a missing STATIC_ROOT, say) is a JSON line too
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "herald.logs.JsonFormatter"},
        "text": {"()": "herald.logs.TextFormatter", "format": "%(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": HERALD_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING") or "WARNING"},
    # Django logs every 4xx as a warning: a caller's mistakes (and a flood of 429s) would flood the log. The
    # access log has them; errors (5xx) are still logged here.
    "loggers": {"django.request": {"level": "ERROR"}},
}

# --- portal: accounts, e-mail, cookies (portal/) ---------------------------------

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
# Argon2 first (memory-hard; Django's recommended hasher, about 2.5x faster here than PBKDF2's 1,000,000
# rounds, which kept sign-up near its 1 s budget); PBKDF2 hashes still verify and are upgraded at next login.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Herald] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if PRODUCTION else "http"
# Per client IP (and per account for failed logins), kept in the cache (Redis).
ACCOUNT_RATE_LIMITS = {
    "login": env_str("HERALD_RATE_LOGIN", "30/m/ip") or "30/m/ip",
    "login_failed": env_str("HERALD_RATE_LOGIN_FAILED", "5/m/ip,5/5m/key") or "5/m/ip,5/5m/key",
    "signup": env_str("HERALD_RATE_SIGNUP", "10/m/ip") or "10/m/ip",
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
    "manage_email": "10/m/user",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Herald"
# An invite link works once, for 7 days (portal.invites).
HERALD_INVITE_MAX_AGE = 7 * 24 * 3600
# Audit entries are kept for a year (`herald purge_audit`).
HERALD_AUDIT_RETENTION_DAYS = env_int("HERALD_AUDIT_RETENTION_DAYS", 365, minimum=1)

# E-mail: SMTP when EMAIL_HOST is set; otherwise the console (or files in HERALD_EMAIL_FILE_PATH, for tests).
EMAIL_HOST = env_str("EMAIL_HOST") or ""
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Herald <no-reply@herald.localhost>") or "no-reply@localhost"
SERVER_EMAIL = DEFAULT_FROM_EMAIL
HERALD_EMAIL_FILE_PATH = env_str("HERALD_EMAIL_FILE_PATH") or ""
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER") or ""
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD") or ""
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", EMAIL_PORT == 587)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", EMAIL_PORT == 465)
    if EMAIL_USE_TLS and EMAIL_USE_SSL:
        raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be true")
    EMAIL_TIMEOUT = 10
elif HERALD_EMAIL_FILE_PATH:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = HERALD_EMAIL_FILE_PATH
else:  # without EMAIL_HOST, e-mails (confirmation links, invites) are printed to stdout
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Where the embedded servers and `herald dev`'s demo state live (HERALD_DATA_DIR): apps read it here.
HERALD_DATA_DIR = data_dir()
