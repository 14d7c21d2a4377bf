"""Settings for msc-admin, driven entirely by the environment (see README, "Configuration").

With no variables set this is the embedded default: SQLite in ./var, an in-memory cache, Celery
tasks run in-process and mail printed to the console. Production sets DEBUG=false, SECRET_KEY,
ALLOWED_HOSTS, DATABASE_URL and REDIS_URL; development and production differ only by values.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from msc_admin.crypto import dev_key_from, parse_keys
from msc_admin.env import env_bool, env_int, env_list, env_secret, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MSC_VAR_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")

DEBUG = env_bool("DEBUG", default=True)
# With DEBUG, Django's debug pages (URL list, traceback, settings) instead of the product's own
# 404 and 500 pages: for development only, never for the embedded demo people try.
MSC_DEBUG_PAGES = env_bool("MSC_DEBUG_PAGES", default=False)
SECRET_KEY = env_secret(
    "SECRET_KEY",
    required=not DEBUG,
    dev_default="dev-only-insecure-key-0123456789abcdefghijklmnopqrstuvwxyz",
)
# Keys for secrets at rest (SMTP passwords, OAuth tokens, MFA secrets), newest first:
# "k2:<fernet key>,k1:<fernet key>". Development derives one from SECRET_KEY.
_secret_keys = env_str("MSC_SECRET_KEYS")
if not DEBUG and not _secret_keys:
    raise ImproperlyConfigured("MSC_SECRET_KEYS must be set when DEBUG is false")
MSC_SECRET_KEYS = parse_keys(_secret_keys) if _secret_keys else [("dev", dev_key_from(SECRET_KEY))]
# Outbound connections to user-entered hosts: development and tests may reach loopback and
# private addresses (on any port); production reaches public addresses on allowed ports only.
MSC_OUTBOUND_ALLOW_PRIVATE = env_bool("MSC_OUTBOUND_ALLOW_PRIVATE", default=False)
# Tests only: exact "address:port" pairs ("127.0.0.1:40123", "[::1]:40123") the guard lets
# through while MSC_OUTBOUND_ALLOW_PRIVATE is off, so a test can run the production guard against
# its own loopback server. Deliberately not read from the environment: nothing outside the test
# suite (which sets it through the ``settings`` fixture) can open it. Empty here, always.
MSC_OUTBOUND_TEST_ALLOW: frozenset[str] = frozenset()
MSC_OUTBOUND_TIMEOUT = env_int("MSC_OUTBOUND_TIMEOUT", 10, minimum=1, maximum=120)
# ...and for a whole conversation (SMTP test or send, IMAP scan, EWS, Graph): a server that
# answers one byte just inside every read timeout is still cut off here.
MSC_OUTBOUND_DEADLINE = env_int(
    "MSC_OUTBOUND_DEADLINE",
    max(60, MSC_OUTBOUND_TIMEOUT),
    minimum=MSC_OUTBOUND_TIMEOUT,
    maximum=600,
)
# DNS for the deliverability checks (SPF, DKIM, DMARC, MX): the system resolver unless
# MSC_DNS_NAMESERVERS lists "address" or "address:port" entries (tests point it at their own
# authoritative server on loopback); a look-up that takes longer than MSC_DNS_TIMEOUT seconds
# is "could not check", never a failure.
MSC_DNS_NAMESERVERS = env_list("MSC_DNS_NAMESERVERS", [])
MSC_DNS_TIMEOUT = env_int("MSC_DNS_TIMEOUT", 5, minimum=1, maximum=30)
# Extra CA certificates (PEM file) trusted for outbound TLS, besides the system store.
MSC_EXTRA_CA_FILE = env_str("MSC_EXTRA_CA_FILE")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is false")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Provider endpoints for Email Connection sending. Only tests point them elsewhere (loopback).
MSC_GMAIL_SMTP = env_str("MSC_GMAIL_SMTP") or "smtp.gmail.com:465"
MSC_GRAPH_URL = env_url("MSC_GRAPH_URL", schemes=("https",)) or "https://graph.microsoft.com"
# Exchange on-premises Autodiscover asks https://<domain>/ and https://autodiscover.<domain>/ on
# this port: 443, as the protocol says (tests point it at their stand-in EWS server on loopback).
MSC_EXCHANGE_AUTODISCOVER_PORT = env_int(
    "MSC_EXCHANGE_AUTODISCOVER_PORT", 443, minimum=1, maximum=65535
)
# The Gmail API, through which Gmail mailboxes are read for bounces (bounces.reading).
MSC_GMAIL_API_URL = (
    env_url("MSC_GMAIL_API_URL", schemes=("https",)) or "https://gmail.googleapis.com"
)
# Where bounces are read from when a mailbox is read by IMAP (XOAUTH2, implicit TLS), and the
# largest message fetched on any reading path.
MSC_GMAIL_IMAP = env_str("MSC_GMAIL_IMAP") or "imap.gmail.com:993"
MSC_OUTLOOK_IMAP = env_str("MSC_OUTLOOK_IMAP") or "outlook.office365.com:993"
MSC_SCAN_MAX_BYTES = env_int("MSC_SCAN_MAX_BYTES", 4_000_000, minimum=10_000)
MSC_SCAN_EVERY_SECONDS = env_int("MSC_SCAN_EVERY_SECONDS", 300, minimum=30)
# A message handed to the broker but not picked up in this long (its task lost, say, to a Redis
# restart without persistence) is handed over again; the claim makes a repeat harmless.
MSC_REDISPATCH_SECONDS = env_int("MSC_REDISPATCH_SECONDS", 300, minimum=1)
# The embedded demo only: mailboxes are folders here (written by the demo SMTP relay), not IMAP.
MSC_DEMO_MAILBOXES = env_str("MSC_DEMO_MAILBOXES") or ""
if MSC_DEMO_MAILBOXES and not DEBUG:
    raise ImproperlyConfigured("MSC_DEMO_MAILBOXES is for the embedded demo (DEBUG=true) only")
# Sending: how many times a temporarily refused message is tried before it fails.
MSC_SEND_MAX_ATTEMPTS = env_int("MSC_SEND_MAX_ATTEMPTS", 8, minimum=1, maximum=50)
# A worker sends a run of one channel's due messages over one SMTP session (RSET between
# them): at most this many messages and seconds per session and per run, well inside the
# task's soft time limit.
MSC_SEND_SESSION_MESSAGES = env_int("MSC_SEND_SESSION_MESSAGES", 100, minimum=1, maximum=10_000)
MSC_SEND_SESSION_SECONDS = env_int("MSC_SEND_SESSION_SECONDS", 60, minimum=1, maximum=600)

# Public address of the dashboard, used in links sent by email (invitations).
MSC_BASE_URL = env_url("MSC_BASE_URL", schemes=("http", "https")) or "http://127.0.0.1:8000"

# Tenant admins and platform staff must use TOTP. Only the embedded demo turns this off.
MSC_REQUIRE_MFA = env_bool("MSC_REQUIRE_MFA", default=True)
# Staff pages additionally ask for a password (or TOTP) confirmation this recent, in seconds.
MSC_STAFF_REAUTH_SECONDS = env_int("MSC_STAFF_REAUTH_SECONDS", 900, minimum=60)

INSTALLED_APPS = [
    "whitenoise.runserver_nostatic",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "allauth.socialaccount.providers.microsoft",
    "accounts",
    "channels",
    "sending",
    "bounces",
    "analytics",
    "staff",
    "reports",
    "demo",
]

MIDDLEWARE = [
    # Outermost, so every response carries the policy and a page always has its nonce: also the
    # 400 for a disallowed Host (raised inside SecurityMiddleware and CommonMiddleware, whose
    # error response never reaches the middleware inside them) and WhiteNoise's static files.
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The browser's language (Accept-Language, or the language cookie); a signed-in user's own
    # choice on their account page wins (accounts.middleware, after authentication).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "msc_admin.middleware.ProductErrorPagesMiddleware",
    "msc_admin.middleware.MethodNotAllowedPageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.middleware.TenantMiddleware",
    "accounts.middleware.MfaRequiredMiddleware",
    "accounts.middleware.StaffGateMiddleware",
    "staff.middleware.ReadOnlyViewAsMiddleware",
]

ROOT_URLCONF = "msc_admin.urls"
WSGI_APPLICATION = "msc_admin.wsgi.application"
ASGI_APPLICATION = "msc_admin.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.tenancy",
            ],
            "builtins": ["msc_admin.humanize"],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", schemes=("postgres", "postgresql", "sqlite"))
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0),
            conn_health_checks=True,
        )
    }
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        # No JIT compilation: our statements are short, and a big tenant's roll-up reads are
        # estimated costly enough to cross PostgreSQL's JIT threshold, where compiling took
        # 100-500 ms for a query that runs in 10-50 ms (and only past some size of data, so
        # the same page swung between runs as statistics moved).
        _options = DATABASES["default"].setdefault("OPTIONS", {})
        _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "msc-admin.sqlite3"),
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, Celery ----------------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss", "unix"))
if not DEBUG and not REDIS_URL:
    # Login rate limits and (later) sending quotas must be shared by every web and worker process.
    raise ImproperlyConfigured("REDIS_URL must be set when DEBUG is false")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "msc",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Without Redis, tasks run in-process (below) and nothing is sent to a broker; Celery still
# opens its in-memory transport to check a task's arguments serialize, and that transport,
# given no host, logs "No hostname was supplied" each time: it is named "localhost" here.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
# No broker configured: run tasks in the calling process (the embedded demo).
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 120, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 180, minimum=1)
# Every countdown and retry stays below this; longer waits live in the database.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Auth and allauth -------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
# Addresses are proven by the invitation link; there is no open sign-up to verify.
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[msc-admin] "
ACCOUNT_RATE_LIMITS = {
    "login": env_str("LOGIN_RATE_LIMIT", "30/m/ip"),
    # Five wrong passwords for one address in five minutes locks that address for the rest.
    "login_failed": env_str("LOGIN_FAILED_RATE_LIMIT", "10/m/ip,5/5m/key"),
    "reset_password": "20/m/ip,5/m/key",
    "reauthenticate": "10/m/user",
}
ACCOUNT_REAUTHENTICATION_TIMEOUT = MSC_STAFF_REAUTH_SECONDS
MFA_ADAPTER = "accounts.adapter.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "msc-admin"
PASSWORD_RESET_TIMEOUT = 3 * 24 * 3600

# Email Connection: allauth's Google and Microsoft providers, used only to *connect* a mailbox to
# a signed-in user (never to sign in). Tokens are not kept by allauth: channels.oauth seals them
# into the channel. Without a client id and secret the page explains how to configure one.
SOCIALACCOUNT_ADAPTER = "channels.oauth.SocialAccountAdapter"
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False


def _oauth_app(prefix: str) -> list[dict[str, str]]:
    client_id, secret = env_str(f"{prefix}_CLIENT_ID"), env_str(f"{prefix}_CLIENT_SECRET")
    if bool(client_id) != bool(secret):
        raise ImproperlyConfigured(
            f"Set both {prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET, or neither"
        )
    return [{"client_id": client_id, "secret": secret, "key": ""}] if client_id and secret else []


SOCIALACCOUNT_PROVIDERS = {
    "google": {
        "APPS": _oauth_app("GOOGLE"),
        # https://mail.google.com/ covers SMTP with XOAUTH2 (sending) and reading bounces, through
        # the Gmail API (history, messages.get) or IMAP; no narrower scope covers SMTP.
        "SCOPE": ["openid", "email", "profile", "https://mail.google.com/"],
        "AUTH_PARAMS": {"access_type": "offline", "prompt": "consent"},
        "OAUTH_PKCE_ENABLED": True,
    },
    "microsoft": {
        "APPS": _oauth_app("MICROSOFT"),
        # Only what is used: User.Read (allauth reads the mailbox address from Graph's /me),
        # Mail.Send (channels.transports.graph sends with /me/sendMail), Mail.Read (bounces.reading
        # reads Inbox and Junk Email: delta queries and each message's MIME; Mail.ReadBasic has
        # no body) and offline_access (the refresh token). A mailbox switched to IMAP reading
        # uses an Outlook token that the refresh asks for (channels.oauth.IMAP_SCOPES).
        "SCOPE": ["User.Read", "Mail.Send", "Mail.Read", "offline_access"],
        "TENANT": env_str("MICROSOFT_TENANT", "organizations"),
    },
}  # also the lifetime of an invitation link

# --- Email ------------------------------------------------------------------------------------
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    _email_port = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": EMAIL_HOST,
                "port": _email_port,
                "username": env_str("EMAIL_HOST_USER", "") or "",
                "password": env_str("EMAIL_HOST_PASSWORD", "") or "",
                "use_tls": env_bool("EMAIL_USE_TLS", default=_email_port == 587),
                "use_ssl": env_bool("EMAIL_USE_SSL", default=_email_port == 465),
                "timeout": 15,
            },
        }
    }
else:
    MAILERS = {"default": {"BACKEND": "msc_admin.mail.EmailBackend"}}  # readable links
del EMAIL_HOST  # Django 6.1 reads MAILERS; the old EMAIL_* names are deprecated.
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "msc-admin <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Static files -----------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")) or "")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security ---------------------------------------------------------------------------------
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    # data: for the TOTP QR code allauth renders inline.
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    # OAuth consent: the connect form posts here and is redirected to the provider.
    "form-action": [CSP.SELF, "https://accounts.google.com", "https://login.microsoftonline.com"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=not DEBUG)
# A refused form gets the product's page, in the reader's language, not Django's developer page.
CSRF_FAILURE_VIEW = "msc_admin.views.csrf_failure"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=SECURE_HSTS_SECONDS > 0)
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
if env_bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)

# --- I18n -------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
# English is the source language; each app keeps its catalogues in <app>/locale/<lang>/LC_MESSAGES
# (found through INSTALLED_APPS), and the project-wide templates/ in locale/ below.
LANGUAGES = [("en", "English"), ("pt-br", "Português (Brasil)"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# A visitor's choice on the signed-out pages (django.views.i18n.set_language); signed-in people's
# is User.language. Sent like the session cookie.
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
USE_TZ = True
# One format for date-times in the UI (msc_admin/formats/en/formats.py): "Nov 26, 2026, 09:24".
FORMAT_MODULE_PATH = ["msc_admin.formats"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Tasks run in-process (the embedded demo): Celery's "Task … succeeded" line for each
        # one is noise there (two inbox scans every 30 s: the demo has two mailboxes). Failures
        # are still logged, and workers log every task as usual.
        **({"celery.app.trace": {"level": "WARNING"}} if CELERY_TASK_ALWAYS_EAGER else {}),
    },
}
