"""LabelLoop settings, read from the environment.

With nothing set, every default works without an external service: SQLite under var/,
Celery over kombu's filesystem broker under var/, media under var/media. Setting
DJANGO_ENV=production (or DEBUG off) makes DJANGO_SECRET_KEY, DATABASE_URL and
CELERY_BROKER_URL required.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("LABELLOOP_VAR_DIR", default=str(BASE_DIR / "var")))
# The SQLite file, the broker folders and media live here; SQLite cannot create the folder.
VAR_DIR.mkdir(parents=True, exist_ok=True)

PRODUCTION = env.str("DJANGO_ENV", default="development") == "production"
DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)


def _required(name: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set. In production (DJANGO_ENV=production) LabelLoop needs "
            f"DJANGO_SECRET_KEY, DATABASE_URL and CELERY_BROKER_URL; see the README's "
            f"configuration table."
        )
    return value


if PRODUCTION:
    SECRET_KEY = _required("DJANGO_SECRET_KEY")
else:
    SECRET_KEY = env.str(
        "DJANGO_SECRET_KEY", default="labelloop-development-only-not-secret-0123456789abcdef"
    )

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS",
    default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"],
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# A refused CSRF check answers JSON under /api/, the page elsewhere.
CSRF_FAILURE_VIEW = "annotate.views.access.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "csp",
    "annotate",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads a body: 413 from Content-Length, 411 for chunked (annotate/limits.py).
    "annotate.limits.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

# A strict Content-Security-Policy on every response (django-csp 4): scripts, styles, images,
# fonts and requests from the studio itself only. No 'unsafe-inline' and no 'unsafe-eval': the
# templates hold no inline script, style element or style attribute (their data-driven colours and
# widths are set by static/annotate/js/styles.js), htmx adds no indicator style, and the API docs
# use drf-spectacular's split Swagger view. Images from elsewhere (in a project's instructions,
# say) are blocked; data: and blob: are for the editors' previews and Swagger UI's icons.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Login throttling (django-axes), counted in the database so it holds across every web process:
# 5 failures of one username from one address lock that pair for 15 minutes, on the login page,
# the admin's and the token endpoint (annotate/api/auth.py). By the pair, not the address alone,
# which would shut out everyone behind one NAT; a success clears the pair's failures.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "annotate.views.access.locked_out_response"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# Databases ------------------------------------------------------------------------------


def _sqlite(path: Path | str, test_name: str | None = None) -> dict:
    # The web server and the worker share this file: WAL lets readers run beside the writer,
    # the timeout waits for the lock instead of failing with "database is locked", and
    # IMMEDIATE takes the write lock at BEGIN so the queue's pick-and-lease is serialised.
    config = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
    if test_name:
        config["TEST"] = {"NAME": test_name}
    return config


if PRODUCTION:
    DATABASES = {"default": env.db_url_config(_required("DATABASE_URL"))}
elif env.str("DATABASE_URL", default="").startswith("sqlite"):
    # A SQLite file named by URL (a test's worker process, say) gets the same options.
    DATABASES = {"default": _sqlite(env.db("DATABASE_URL")["NAME"])}
elif env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    # Tests use a file too: threads and worker processes must see one database with real
    # locking. One file per pytest process, so two runs side by side don't share it.
    DATABASES = {
        "default": _sqlite(
            VAR_DIR / "labelloop.sqlite3", test_name=str(VAR_DIR / f"test-labelloop-{os.getpid()}.sqlite3")
        )
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        # Server-side binding, and psycopg prepares a statement its connection runs twice: the
        # queue's dozen statements per cycle are then planned once per connection, not each
        # time (planning was most of PostgreSQL's CPU per label-and-next cycle: measured 5.3-7.5
        # ms per cycle before, 2.6-3.6 after). Turn off behind a transaction-pooling PgBouncer.
        DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=2)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("LABELLOOP_MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Imported files, uploads, exports and model artifacts go through this storage. Local files under
# MEDIA_ROOT by default; with several machines, a storage they share (for example django-storages'
# S3 backend: LABELLOOP_STORAGE_BACKEND=storages.backends.s3.S3Storage and its OPTIONS as JSON).
STORAGES = {
    "default": {
        "BACKEND": env.str(
            "LABELLOOP_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"
        ),
        "OPTIONS": env.json("LABELLOOP_STORAGE_OPTIONS", default={}),
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Per-machine caches, never shared: feature rows and downloaded model artifacts.
LABELLOOP_CACHE_DIR = Path(env.str("LABELLOOP_CACHE_DIR", default=str(VAR_DIR / "cache")))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"

EMAIL_BACKEND = env.str("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")

# Security: on in production, `manage.py check --deploy` clean.
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotate.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's JSON parser, refusing NUL characters with a 400 that says where (annotate/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "annotate.api.parsers.JSONParserNoNul",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "annotate.api.schema.LabelLoopAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "annotate.api.pagination.KeysetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "annotate.api.exceptions.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LabelLoop API",
    "DESCRIPTION": "Projects, labels, members, items, the annotator queue and annotations.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from the installed sidecar package: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status" with their own choices: name each enum.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "annotate.models.JobStatus",
        "TrainingRunStatusEnum": "training.models.TrainingRun.Status",
    },
    "COMPONENT_SPLIT_REQUEST": True,
    # The `id` path converter (annotate/converters.py): a row id, 0 to 2**63 - 1 digits-wise.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}},
}

# Celery ---------------------------------------------------------------------------------
CELERY_BROKER_DIR = VAR_DIR / "celery"
if PRODUCTION:
    CELERY_BROKER_URL = _required("CELERY_BROKER_URL")
else:
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport, made safe against torn and doubly-read messages (config/broker.py).
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
        # How often an idle worker lists the queue folder (kombu's default: every second). A
        # listing costs microseconds; a second of waiting was a fifth of a 100,000-row import.
        "polling_interval": 0.1,
    }
elif CELERY_BROKER_URL.startswith("redis"):
    # Above the longest hard time limit, so a long run is not redelivered mid-way.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 4 * 3600}
CELERY_TASK_IGNORE_RESULT = True
# Only the prediction task keeps its result (ignore_result=False there): the web process waits on
# it. On Redis, the broker's server unless CELERY_RESULT_BACKEND says otherwise; on the embedded
# broker, Celery's filesystem result backend under var/celery/results, with writes made atomic
# (config/celery.py): a result read half-written would fail the request.
CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND",
    default=(
        CELERY_BROKER_URL
        if CELERY_BROKER_URL.startswith("redis")
        else f"config.celery:AtomicFilesystemBackend+file://{CELERY_BROKER_DIR / 'results'}"
    ),
)
# A waiter that gave up leaves its result behind: Redis drops it after this many seconds, and
# beat's daily backend_cleanup deletes result files older than this.
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_DEFAULT_QUEUE = "default"
# Training runs on its own queue, consumed by a worker with concurrency 1.
# The model work goes to the training worker: a cold start's k-means (seconds on a large import)
# must not hold the default worker, which runs imports and exports (measured: an HTTP import
# waited 17 s behind one, bench/bench_queue_http.py).
CELERY_TASK_ROUTES = {
    "training.tasks.training_run_execute": {"queue": "training"},
    "training.tasks.cold_start_compute": {"queue": "training"},
    # Predictions for the REST endpoint: a worker of their own keeps each model loaded, so a
    # request never waits behind a training run or an import, and a web process never loads one.
    "training.tasks.predictions_compute": {"queue": "predict"},
}
CELERY_BEAT_SCHEDULE = {
    "training-runs-sweep": {"task": "training.tasks.training_runs_sweep", "schedule": 60.0},
    "import-jobs-sweep": {"task": "annotate.tasks.import_jobs_sweep", "schedule": 60.0},
    "export-jobs-sweep": {"task": "annotate.tasks.export_jobs_sweep", "schedule": 60.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# LabelLoop ------------------------------------------------------------------------------
LABELLOOP_MAX_LEASES_PER_ANNOTATOR = 2
# Images over this many pixels are refused at import (decompression bombs, 8K scans).
LABELLOOP_MAX_IMAGE_PIXELS = env.int("LABELLOOP_MAX_IMAGE_PIXELS", default=50_000_000)
# Images named by URL in an import (projects with fetch_image_urls on; annotate/importing/remote.py):
# a body over this many bytes is refused, and each fetch, redirects included, has this many seconds.
LABELLOOP_URL_FETCH_MAX_BYTES = env.int("LABELLOOP_URL_FETCH_MAX_BYTES", default=20 * 1024 * 1024)
LABELLOOP_URL_FETCH_TIMEOUT = env.float("LABELLOOP_URL_FETCH_TIMEOUT", default=10.0)
# Exports of projects with more items than this run as a task writing a file to download.
LABELLOOP_EXPORT_STREAM_MAX_ITEMS = env.int("LABELLOOP_EXPORT_STREAM_MAX_ITEMS", default=50_000)
# Training runs write a heartbeat this often; the sweeper fails runs silent for longer than
# LABELLOOP_RUN_STALE_SECONDS ("worker lost").
LABELLOOP_RUN_HEARTBEAT_SECONDS = env.float("LABELLOOP_RUN_HEARTBEAT_SECONDS", default=15)
LABELLOOP_RUN_STALE_SECONDS = env.float("LABELLOOP_RUN_STALE_SECONDS", default=120)
# A running import or export job silent for longer lost its worker: the sweeper fails it. Its
# progress writes are its heartbeat; an import on SQLite cannot write one (the import holds the
# one writer lock), so there the sweeper waits out the import task's time limit instead.
LABELLOOP_JOB_STALE_SECONDS = env.float("LABELLOOP_JOB_STALE_SECONDS", default=300)
# bin/run's supervisor (config/supervisor.py) writes the state of the processes it runs here;
# the project page reads it to say when training is unavailable.
LABELLOOP_SUPERVISOR_STATE = Path(
    env.str("LABELLOOP_SUPERVISOR_STATE", default=str(VAR_DIR / "supervisor.json"))
)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# The largest request body the studio takes, in bytes (default 256 MiB: a zip of images or a
# JSONL of 100,000 texts fits): larger is a 413 from Content-Length before a byte is read, and
# uploads are counted as they arrive and stopped 1 MiB past it (annotate/limits.py).
LABELLOOP_MAX_REQUEST_BYTES = env.int("LABELLOOP_MAX_REQUEST_BYTES", default=256 * 1024 * 1024)
FILE_UPLOAD_HANDLERS = [
    "annotate.limits.CountingUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
DATA_UPLOAD_MAX_NUMBER_FILES = 5000

# The prediction endpoint (POST /api/projects/<id>/predict/, training/predict.py): at most this
# many texts or images a request, and this many bytes of body, refused from Content-Length before
# anything is read. DRF reads a JSON body as a stream, so DATA_UPLOAD_MAX_MEMORY_SIZE never applies
# to it: this cap is the only one. Kept at or below FILE_UPLOAD_MAX_MEMORY_SIZE, every uploaded
# image stays in memory (no temporary file).
LABELLOOP_PREDICT_MAX_ITEMS = env.int("LABELLOOP_PREDICT_MAX_ITEMS", default=256)
LABELLOOP_PREDICT_MAX_BYTES = env.int("LABELLOOP_PREDICT_MAX_BYTES", default=8 * 1024 * 1024)
# Seconds the web process waits for the predict worker's answer (then 503).
LABELLOOP_PREDICT_TIMEOUT = env.float("LABELLOOP_PREDICT_TIMEOUT", default=30)
# Requests per user, counted in CACHES["throttle"], shared by every web process: "120/min",
# "10/s", "5000/hour"; empty: no limit.
LABELLOOP_PREDICT_RATE = env.str("LABELLOOP_PREDICT_RATE", default="120/min")

# Caches ---------------------------------------------------------------------------------
# "throttle" holds rate-limit counters every web process must share: Redis when one is configured
# (LABELLOOP_CACHE_URL, else the broker's Redis: the keys are prefixed, so they never meet kombu's
# or Celery's), otherwise a table in the database (`manage.py createcachetable`, which bin/run runs;
# the test database gets it when it is created).
LABELLOOP_CACHE_URL = env.str(
    "LABELLOOP_CACHE_URL", default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else ""
)
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache"
        if LABELLOOP_CACHE_URL
        else "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": LABELLOOP_CACHE_URL or "labelloop_cache",
        "KEY_PREFIX": "labelloop-throttle",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LABELLOOP_LOG_LEVEL", default="INFO")},
    # django-axes logs every start and every failed login at INFO; its lockouts are WARNING.
    "loggers": {"axes": {"level": "WARNING"}},
}
