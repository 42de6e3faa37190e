"""RefundGuard settings.

This module alone reads the environment. Every variable has a default that runs the embedded
setup (SQLite, a filesystem Celery broker, the in-memory channel layer, console email), so
`make run` works on a bare machine; `DATABASE_URL` and `REDIS_URL` switch to PostgreSQL and Redis.
"""

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)

# Runtime state of the embedded setup (SQLite file, broker folder) lives here.
VAR_DIR = Path(env.str("REFUNDGUARD_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

_DEV_SECRET = "dev-only-secret-key-never-used-in-production-0123456789abcdef"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET if DEBUG else "")
if not DEBUG and (not SECRET_KEY or SECRET_KEY == _DEV_SECRET):
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

# Key for encrypting bank account numbers at rest (Fernet, urlsafe base64 of 32 bytes).
_DEV_FIELD_KEY = "cmVmdW5kZ3VhcmQtZGV2LW9ubHktZmllbGQta2V5LTA="
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY", default=_DEV_FIELD_KEY if DEBUG else "")
if not DEBUG and (not FIELD_ENCRYPTION_KEY or FIELD_ENCRYPTION_KEY == _DEV_FIELD_KEY):
    raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Absolute base of links sent to customers (progress pages); empty means "the request's host".
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "daphne",
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
    "channels",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "pgtrigger",
    "axes",
    "apps.common",
    "apps.accounts",
    "apps.orders",
    "apps.ledger",
    "apps.gateways",
    "apps.risk",
    "apps.transfers",
    "apps.refunds",
    "apps.payouts",
    "apps.notifications",
    "apps.alerts",
    "apps.commissions",
    "apps.console",
    "apps.track",
]

MIDDLEWARE = [
    # Outermost, so it sees every error response (apps/common/middleware.py).
    "apps.common.middleware.JSONErrorMiddleware",
    # Bodies sent chunked: read within DATA_UPLOAD_MAX_MEMORY_SIZE, never as empty.
    "apps.common.middleware.ChunkedBodyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "apps.common.language.MachineLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who and from where for the audit log, read when a row is written (apps/common/audit.py).
    "apps.common.audit.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out sign-in with the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "refundguard.urls"
WSGI_APPLICATION = "refundguard.wsgi.application"
ASGI_APPLICATION = "refundguard.asgi.application"

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

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'refundguard.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat write the embedded SQLite at once: WAL, immediate write transactions
    # and a busy timeout keep "database is locked" away under light load.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # Persistent connections suit the gunicorn sync workers; the ASGI (daphne) process sets
    # CONN_MAX_AGE=0 because per-request threads would otherwise exhaust PostgreSQL's slots.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Parameters bound by the server and statements prepared after their fifth run on a
    # connection: planning was a third of PostgreSQL's work per refund request. Every Python int is
    # bound as a bigint (apps/common/apps.py). Off behind a pooler that cannot keep prepared
    # statements (PgBouncer in transaction mode before 1.21).
    if env.bool("DB_SERVER_SIDE_BINDING", default=True):
        DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
IS_POSTGRES = DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out sign-in before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/console/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Redis: cache, Celery broker, channel layer -------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="refundguard"),
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Rate-limit counters (apps/common/throttling.py) must be seen by every process that serves
# requests: Redis when there is one (its own key prefix, so tests can forget them alone), else a
# folder the embedded setup's processes share (a per-process LocMem would multiply every limit by
# the number of web processes).
if REDIS_URL:
    CACHES["throttle"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="refundguard") + "-throttle",
    }
else:
    # incr() there rewrites an entry with the cache's default timeout: a day, the longest window.
    CACHES["throttle"] = {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "throttle"),
        "TIMEOUT": 24 * 3600,
    }

# How live events (alerts, notifications) reach browsers: "channel_layer" sends them straight to
# the channel layer (Redis: every process shares it); "database" writes them to a table that the
# WebSocket process relays into its own in-memory layer — the embedded setup's way across the
# web, worker and beat processes (apps/common/live.py).
LIVE_RELAY = env.str("LIVE_RELAY", default="channel_layer" if REDIS_URL else "database")
LIVE_RELAY_POLL_SECONDS = env.float("LIVE_RELAY_POLL_SECONDS", default=0.5)

# --- Celery -----------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
# The filesystem transport ignores host and vhost, but naming them keeps kombu from warning
# "No hostname was supplied" on every connection.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://localhost//")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # One folder for in and out: every process on this machine shares the queue, and the
    # transport still answers broadcast control commands (`celery inspect ping`).
    (BROKER_DIR / "queue").mkdir(parents=True, exist_ok=True)
    (BROKER_DIR / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(BROKER_DIR / "control"),
    }
    (BROKER_DIR / "control").mkdir(parents=True, exist_ok=True)
else:
    # Redis hands a message out again once it has been unacknowledged this long: a killed worker's
    # tasks come back after it. The sweep looks every 10 s (kombu's default is ~100 s). Every task's
    # hard time limit and every retry countdown stay below it (docs/operations.md, "Workers and queues").
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=300),
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Queues per kind of work; a worker started without -Q consumes all three (docs/operations.md).
CELERY_TASK_QUEUES = [Queue("money"), Queue("notifications"), Queue("housekeeping")]
CELERY_TASK_DEFAULT_QUEUE = "housekeeping"
CELERY_TASK_ROUTES = {
    "apps.refunds.tasks.*": {"queue": "money"},
    "apps.payouts.tasks.*": {"queue": "money"},
    "apps.notifications.tasks.*": {"queue": "notifications"},
}
# Below the visibility timeout, so a task still running is never handed to a second worker. The
# longest ordinary task is a poll batch: 50 ids, 8 bank calls at a time, 15 s each at worst (~95 s).
CELERY_TASK_SOFT_TIME_LIMIT = 150
CELERY_TASK_TIME_LIMIT = 180
# Nightly jobs may run longer than the visibility timeout: a copy handed out meanwhile waits on the
# job's once-per-period guard (its period claim, or the lock on the day's reconciliation result)
# and then does nothing.
_NIGHTLY_LIMITS = {"soft_time_limit": 1500, "time_limit": 1800}
CELERY_TASK_ANNOTATIONS = {
    "apps.risk.tasks.risk_model_train_task": _NIGHTLY_LIMITS,
    "apps.risk.tasks.risk_baselines_refresh_task": _NIGHTLY_LIMITS,
    "apps.ledger.tasks.reconciliation_run_task": _NIGHTLY_LIMITS,
}
# A lost broker connection hands every unacknowledged message out again: stop what is running
# rather than let a second worker start the same task beside it.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# The database scheduler with interval ticks aligned to the windows periodic jobs claim
# (apps/common/beat.py): each job is sent once per window, at the same place, by every beat.
CELERY_BEAT_SCHEDULER = "apps.common.beat:WindowScheduler"

# --- Celery: publishing (the web side) ---------------------------------------------------------
# A publish to an unreachable broker must not hold a request: the work it would start is also found
# by a periodic job, and an after-commit publish that fails is only logged (apps/common/publish.py).
# A connect may take 1 s (Redis reads it from its transport options, AMQP from the connection
# timeout) and an answer 2 s (a broker gone without closing the socket; Redis's BRPOP waits 1 s),
# at most two attempts 0.1 s apart: measured, a publish to a silent Redis gives up after ~2 s and a
# refused connection after ~0.1 s. (Defaults: no limit at all on Redis, 4 s on AMQP, four attempts.)
CELERY_BROKER_CONNECTION_TIMEOUT = 1.0
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,
        "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
        "socket_timeout": 2.0,
    }

# Periodic jobs are declared here, in one place; the database scheduler picks them up. A job that
# claims its period (apps/common/periodic.py) claims windows of its own tick: one setting for both.
ALERT_ESCALATION_WINDOW_SECONDS = env.int("ALERT_ESCALATION_TICK_SECONDS", default=60)
ALERT_WATCH_WINDOW_SECONDS = env.int("ALERT_WATCH_TICK_SECONDS", default=300)
ALERT_SPIKE_WINDOW_SECONDS = env.int("ALERT_SPIKE_TICK_SECONDS", default=900)
HEARTBEAT_SECONDS = env.int("HEARTBEAT_SECONDS", default=30)
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {
        "task": "apps.common.tasks.heartbeat_task",
        "schedule": float(HEARTBEAT_SECONDS),
    },
    "refund-poll": {
        "task": "apps.refunds.tasks.refund_poll_due_task",
        "schedule": float(env.int("REFUND_POLL_TICK_SECONDS", default=3)),
    },
    "payout-poll": {
        "task": "apps.payouts.tasks.payout_poll_due_task",
        "schedule": float(env.int("PAYOUT_POLL_TICK_SECONDS", default=3)),
    },
    "idempotency-purge": {
        "task": "apps.common.tasks.idempotency_purge_task",
        "schedule": 3600.0,
    },
    # The sandbox bank sends its due webhooks (no-op when SANDBOX_BANK_ENABLED is off).
    "sandbox-bank-webhooks": {
        "task": "apps.gateways.tasks.sandbox_bank_deliver_webhooks_task",
        "schedule": 2.0,
    },
    # Channel health from recent calls (and probes of idle or down channels): routing and alerts.
    "channel-health-refresh": {
        "task": "apps.gateways.tasks.channel_health_refresh_task",
        "schedule": float(env.int("CHANNEL_HEALTH_REFRESH_SECONDS", default=60)),
    },
    # Nightly, quiet hours (UTC): baselines first, then the model trains on the day's outcomes.
    "risk-baselines-refresh": {
        "task": "apps.risk.tasks.risk_baselines_refresh_task",
        "schedule": crontab(minute=10, hour=2),
    },
    "risk-model-train": {
        "task": "apps.risk.tasks.risk_model_train_task",
        "schedule": crontab(minute=30, hour=2),
    },
    # Yesterday's channel statements against the ledger, once the banks' day is closed. Hourly until
    # 07:15: a statement the bank has not published yet is tried again by the next tick (a day with
    # a current result is kept), not by a countdown longer than the broker's visibility timeout.
    "reconciliation-daily": {
        "task": "apps.ledger.tasks.reconciliation_daily_task",
        "schedule": crontab(minute=15, hour="1-7"),
    },
    # Alerts: watchers, escalation and auto-resolve; each takes effect once per window (PeriodicRun).
    "alert-escalate": {
        "task": "apps.alerts.tasks.alert_escalate_due_task",
        "schedule": float(ALERT_ESCALATION_WINDOW_SECONDS),
    },
    "alert-sla-watch": {
        "task": "apps.alerts.tasks.alert_sla_watch_task",
        "schedule": float(ALERT_WATCH_WINDOW_SECONDS),
    },
    "alert-deadline-watch": {
        "task": "apps.alerts.tasks.alert_deadline_watch_task",
        "schedule": float(ALERT_WATCH_WINDOW_SECONDS),
    },
    "alert-spike-detect": {
        "task": "apps.alerts.tasks.alert_spike_detect_task",
        "schedule": float(ALERT_SPIKE_WINDOW_SECONDS),
    },
    # Notifications deferred by quiet hours, waiting for a retry or a digest, or orphaned by a crash.
    "notification-dispatch-due": {
        "task": "apps.notifications.tasks.notification_dispatch_due_task",
        "schedule": float(env.int("NOTIFY_SWEEP_TICK_SECONDS", default=5)),
    },
    "alert-auto-resolve": {
        "task": "apps.alerts.tasks.alert_auto_resolve_due_task",
        "schedule": float(ALERT_WATCH_WINDOW_SECONDS),
    },
    # Commissions: pending → available after the settlement period, then settled into balances.
    "commission-mature": {
        "task": "apps.commissions.tasks.commission_mature_task",
        "schedule": float(env.int("COMMISSION_TICK_SECONDS", default=600)),
    },
    "commission-settle": {
        "task": "apps.commissions.tasks.commission_settle_task",
        "schedule": float(env.int("COMMISSION_TICK_SECONDS", default=600)),
    },
    "commission-abuse-scan": {
        "task": "apps.commissions.tasks.commission_abuse_scan_task",
        "schedule": crontab(minute=40, hour=2),
    },
}

# --- Alerts (apps.alerts; DESIGN.md "Tiered alerts") ----------------------------------------------
# A refund (or payout) failing at or above this amount, in minor units, is a P0 (100 000.00).
ALERT_LARGE_FAILURE_AMOUNT = env.int("ALERT_LARGE_FAILURE_AMOUNT", default=10_000_000)
# Who is paged for a P0, in escalation order: each re-page goes one step further down the list.
ALERT_ONCALL_ROTA = env.list("ALERT_ONCALL_ROTA", default=["oncall-primary", "oncall-secondary", "oncall-manager"])
# An unacked P0 is paged again (next on-call) after this; a P1 unresolved this long becomes a P0.
ALERT_P0_REPAGE_AFTER = timedelta(minutes=env.int("ALERT_P0_REPAGE_MINUTES", default=10))
ALERT_P1_UPGRADE_AFTER = timedelta(hours=env.int("ALERT_P1_UPGRADE_HOURS", default=24))
# Submitted/processing longer than this → P1 "refund_not_arrived" (payouts likewise).
ALERT_NOT_ARRIVED_AFTER = timedelta(hours=env.int("ALERT_NOT_ARRIVED_HOURS", default=24))
# Card refunds must complete within ALERT_CARD_DEADLINE_DAYS of the request; warn from the WARN day.
ALERT_CARD_DEADLINE_DAYS = env.int("ALERT_CARD_DEADLINE_DAYS", default=7)
ALERT_CARD_DEADLINE_WARN_DAYS = env.int("ALERT_CARD_DEADLINE_WARN_DAYS", default=5)
# Category spike: refunds requested within WINDOW minutes of payment, per product kind, today
# against the daily mean of the previous BASELINE_DAYS; a P1 from FACTOR × mean and MIN_COUNT up.
ALERT_SPIKE_WINDOW_MINUTES = env.int("ALERT_SPIKE_WINDOW_MINUTES", default=30)
ALERT_SPIKE_BASELINE_DAYS = env.int("ALERT_SPIKE_BASELINE_DAYS", default=7)
ALERT_SPIKE_FACTOR = env.float("ALERT_SPIKE_FACTOR", default=3.0)
ALERT_SPIKE_MIN_COUNT = env.int("ALERT_SPIKE_MIN_COUNT", default=10)

# --- Reconciliation against channel statements (apps/ledger/reconciliation.py) ------------------
# A statement amount this many minor units away from the ledger's still matches (the difference is
# noted on the item). 0: exact.
RECONCILIATION_AMOUNT_TOLERANCE = env.int("RECONCILIATION_AMOUNT_TOLERANCE_MINOR", default=0)
# A statement line and a ledger record this many days apart still match (value date vs posting
# date, both UTC): a transfer confirmed just before midnight may carry the next day's value date.
RECONCILIATION_DATE_TOLERANCE_DAYS = env.int("RECONCILIATION_DATE_TOLERANCE_DAYS", default=1)
# Largest CSV statement the API accepts as a multipart upload, bytes (JSON bodies stay under
# DATA_UPLOAD_MAX_MEMORY_SIZE).
RECONCILIATION_CSV_MAX_BYTES = env.int("RECONCILIATION_CSV_MAX_BYTES", default=10 * 1024 * 1024)

# --- Bank channels and the sandbox bank ---------------------------------------------------------
# Reuse HTTP connections to channels (a requests.Session per worker thread). Off only where every
# call must close its socket, e.g. tests against a live server that is torn down between tests.
CHANNEL_HTTP_KEEPALIVE = env.bool("CHANNEL_HTTP_KEEPALIVE", default=True)
# Signed webhooks older or newer than this are refused (replay window), seconds.
CHANNEL_WEBHOOK_TOLERANCE_SECONDS = env.int("CHANNEL_WEBHOOK_TOLERANCE_SECONDS", default=300)
# Channel health and failover (apps.gateways.services: channel_health_refresh, channel_for).
# A channel is judged on its calls in the last window: at least CHANNEL_HEALTH_MIN_CALLS of them, or
# it is not judged on its rate at all (too few to tell). Degraded from the threshold rate up, and
# back to healthy only below the recovery rate (hysteresis, so a rate hovering at the threshold
# does not flap); down from the down rate up while its latest call failed.
CHANNEL_HEALTH_WINDOW = timedelta(minutes=env.int("CHANNEL_HEALTH_WINDOW_MINUTES", default=15))
CHANNEL_HEALTH_MIN_CALLS = env.int("CHANNEL_HEALTH_MIN_CALLS", default=20)
CHANNEL_FAILURE_RATE_THRESHOLD = env.float("CHANNEL_FAILURE_RATE_THRESHOLD", default=0.2)
CHANNEL_FAILURE_RATE_RECOVERY = env.float("CHANNEL_FAILURE_RATE_RECOVERY", default=0.1)
CHANNEL_DOWN_FAILURE_RATE = env.float("CHANNEL_DOWN_FAILURE_RATE", default=0.9)
# An outage error marks a channel down at once; it stays down at least this long after the last
# outage error, then recovers on the first call that succeeds (a probe, if nothing else calls it).
CHANNEL_DOWN_COOLOFF = timedelta(seconds=env.int("CHANNEL_DOWN_COOLOFF_SECONDS", default=60))
# The refresh probes (a status query for a request id that cannot exist) channels that are down
# past their cool-off or have had no call for CHANNEL_HEALTH_PROBE_IDLE_SECONDS. Off: a down
# channel is routed to again after its cool-off, and its next real call is the probe.
CHANNEL_HEALTH_PROBE = env.bool("CHANNEL_HEALTH_PROBE", default=True)
CHANNEL_HEALTH_PROBE_IDLE = timedelta(seconds=env.int("CHANNEL_HEALTH_PROBE_IDLE_SECONDS", default=120))
# Health not worked out for this long (beat stopped) is ignored by routing: plain priority order.
CHANNEL_HEALTH_STALE = timedelta(seconds=env.int("CHANNEL_HEALTH_STALE_SECONDS", default=600))
# "Failure rate rising N days in a row" (P1, prefer the backup): N day-over-day rises across N + 1
# complete UTC days, each with at least CHANNEL_RISING_MIN_CALLS calls.
CHANNEL_RISING_DAYS = env.int("CHANNEL_RISING_DAYS", default=3)
CHANNEL_RISING_MIN_CALLS = env.int("CHANNEL_RISING_MIN_CALLS", default=20)
# The sandbox bank (DESIGN.md, "Sandbox bank") is mounted at /sandbox/bank/; on by default only in DEBUG.
SANDBOX_BANK_ENABLED = env.bool("SANDBOX_BANK_ENABLED", default=DEBUG)
# Where the sandbox adapter finds the bank when a channel has no base_url; empty means
# PUBLIC_BASE_URL + "/sandbox/bank" (the copy mounted in this process).
SANDBOX_BANK_URL = env.str("SANDBOX_BANK_URL", default="")
_DEV_SANDBOX_WEBHOOK_SECRET = "whsec_dev_only_sandbox_bank_0123456789abcdef"
SANDBOX_WEBHOOK_SECRET = env.str("SANDBOX_WEBHOOK_SECRET", default=_DEV_SANDBOX_WEBHOOK_SECRET if DEBUG else "")
if SANDBOX_BANK_ENABLED and not DEBUG and SANDBOX_WEBHOOK_SECRET in ("", _DEV_SANDBOX_WEBHOOK_SECRET):
    raise ImproperlyConfigured("SANDBOX_WEBHOOK_SECRET must be set when the sandbox bank runs with DEBUG off.")
# Seconds until an ordinary transfer settles; 0001 accounts take SANDBOX_BANK_DELAY_SECONDS (30 h);
# 0003 accounts get their money back SANDBOX_BANK_RETURN_SECONDS after settling.
SANDBOX_BANK_SETTLE_SECONDS = env.float("SANDBOX_BANK_SETTLE_SECONDS", default=2.0)
SANDBOX_BANK_DELAY_SECONDS = env.float("SANDBOX_BANK_DELAY_SECONDS", default=30 * 3600.0)
SANDBOX_BANK_RETURN_SECONDS = env.float("SANDBOX_BANK_RETURN_SECONDS", default=60.0)
# How long 0005/0006 submits take to answer: longer than a channel's timeout_seconds (default 5).
SANDBOX_BANK_TIMEOUT_SLEEP = env.float("SANDBOX_BANK_TIMEOUT_SLEEP", default=6.0)
# Timeout of the bank's own webhook POSTs, seconds.
SANDBOX_BANK_WEBHOOK_TIMEOUT = env.float("SANDBOX_BANK_WEBHOOK_TIMEOUT", default=5.0)

# --- Email ------------------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="RefundGuard <noreply@refundguard.local>")

# --- Twilio (sandbox provider unless credentials are set) ---------------------------------------
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="")

# --- Notifications (apps.notifications) ----------------------------------------------------------
# At most this many SMS per recipient per window (the rest wait in one digest SMS); critical pages
# are not limited.
NOTIFY_SMS_PER_WINDOW = env.int("NOTIFY_SMS_PER_HOUR", default=3)
NOTIFY_SMS_WINDOW = timedelta(hours=1)
NOTIFY_MAX_ATTEMPTS = env.int("NOTIFY_MAX_ATTEMPTS", default=5)
NOTIFY_RETRY_BASE = timedelta(seconds=env.int("NOTIFY_RETRY_BASE_SECONDS", default=30))
NOTIFY_RETRY_CAP = timedelta(minutes=30)
# A row left "sending" this long belongs to a worker that died: the sweep asks the provider.
NOTIFY_SENDING_LEASE = timedelta(seconds=env.int("NOTIFY_SENDING_LEASE_SECONDS", default=120))
NOTIFY_DEFAULT_TIME_ZONE = env.str("NOTIFY_DEFAULT_TIME_ZONE", default="Asia/Shanghai")
NOTIFY_EMAIL_DOMAIN = env.str("NOTIFY_EMAIL_DOMAIN", default="refundguard.local")
# What customers are told: where to get help, and what the platform gives when a delay is its fault.
NOTIFY_SUPPORT_PHONE = env.str("NOTIFY_SUPPORT_PHONE", default="400-800-1234")
NOTIFY_SUPPORT_URL = env.str("NOTIFY_SUPPORT_URL", default=PUBLIC_BASE_URL.rstrip("/") + "/support/")
NOTIFY_COMPENSATION = {
    "zh-hans": env.str("NOTIFY_COMPENSATION_ZH", default="一张10元无门槛优惠券"),
    "en": env.str("NOTIFY_COMPENSATION_EN", default="a CNY 10 coupon with no minimum spend"),
}

# --- I18N -------------------------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = DEBUG

# Currencies the platform settles (ISO 4217); exponents and formatting come from CLDR (babel).
SUPPORTED_CURRENCIES = env.list(
    "SUPPORTED_CURRENCIES", default=["CNY", "USD", "EUR", "GBP", "HKD", "JPY", "SGD", "AUD", "CAD", "KWD"]
)
# Largest single amount accepted anywhere, in minor units (fits a signed 64-bit column with room
# for sums); anything larger is refused as bad input.
MAX_AMOUNT_MINOR = env.int("MAX_AMOUNT_MINOR", default=10**15)

# How long an Idempotency-Key is remembered (the contract promises at least 24 h).
IDEMPOTENCY_TTL = timedelta(hours=env.int("IDEMPOTENCY_TTL_HOURS", default=48))

# --- Freeze holds ---------------------------------------------------------------------------------
# A refund, payout or withdrawal held because its customer or destination account is frozen is
# released as soon as the last freeze is lifted (a signal); the pollers also look at each held one
# this often, in case that signal was lost.
FREEZE_HOLD_RECHECK = timedelta(seconds=env.int("FREEZE_HOLD_RECHECK_SECONDS", default=300))

# --- Refund movement timing ----------------------------------------------------------------------


def _verify_checks(name: str, *, default: list[int]) -> tuple[timedelta, ...]:
    """A verification schedule from a comma-separated list of minutes after the money arrived."""
    raw = env.list(name, default=[str(minutes) for minutes in default])
    try:
        minutes = sorted({int(value) for value in raw})
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be whole minutes, e.g. 1,15,120,1440,4320.") from None
    if not minutes or minutes[0] <= 0:
        raise ImproperlyConfigured(f"{name} needs at least one check, each a positive number of minutes.")
    return tuple(timedelta(minutes=value) for value in minutes)


# How often in-flight refunds are queried when no webhook has arrived, and how long after a
# submit timeout we wait before querying (a slow bank may still be executing the request).
REFUND_POLL_INTERVAL = timedelta(seconds=env.int("REFUND_POLL_INTERVAL_SECONDS", default=5))
REFUND_UNKNOWN_QUERY_DELAY = timedelta(seconds=env.int("REFUND_UNKNOWN_QUERY_DELAY_SECONDS", default=3))
# Retryable failures retry with exponential backoff: base × 2^n, capped, at most this many times.
REFUND_RETRY_BASE = timedelta(seconds=env.int("REFUND_RETRY_BASE_SECONDS", default=10))
REFUND_RETRY_CAP = timedelta(seconds=env.int("REFUND_RETRY_CAP_SECONDS", default=3600))
REFUND_MAX_RETRIES = env.int("REFUND_MAX_RETRIES", default=6)
# A success is queried again for late returns (banks return funds days later: account closed) at
# these offsets after it arrived, in minutes, and never otherwise: a handful of queries per refund
# however many are settled (RELIABILITY G19). The last offset ends the verification window. The
# first comes after the sandbox bank's return (60 s after settling); banks return most funds within
# hours, the rest within three days.
REFUND_VERIFY_CHECKS = _verify_checks("REFUND_VERIFY_CHECKS_MINUTES", default=[1, 15, 120, 1440, 4320])
# An approved refund whose submit task never ran is submitted by the poller after this grace.
REFUND_SUBMIT_GRACE = timedelta(seconds=env.int("REFUND_SUBMIT_GRACE_SECONDS", default=30))
REFUND_POLL_BATCH = env.int("REFUND_POLL_BATCH", default=500)
# Claimed ids go to workers in chunks of this many; a worker has up to REFUND_POLL_CONCURRENCY bank
# queries of a chunk in flight at once (HTTP threads only: database writes stay one by one).
REFUND_POLL_CHUNK = env.int("REFUND_POLL_CHUNK", default=50)
REFUND_POLL_CONCURRENCY = env.int("REFUND_POLL_CONCURRENCY", default=8)
# The promise shown to customers, by payment method (hours until arrival at the latest).
REFUND_ETA_HOURS = {"card": 72, "bank_transfer": 24, "wallet": 2, "balance": 1}
# A delay (bank hold, retryable failure) moves the promised arrival to at least this far ahead
# (the seed practice: "one more working day"); the customer is told the new time.
REFUND_DELAY_ETA = timedelta(hours=env.int("REFUND_DELAY_ETA_HOURS", default=24))
# Trust tiers for refund decisions (apps.refunds.decision.trust_for).
REFUND_TRUST = {
    "new_account_days": env.int("TRUST_NEW_ACCOUNT_DAYS", default=30),
    # watch: stricter — nothing is approved without a person.
    "watch_chargebacks": env.int("TRUST_WATCH_CHARGEBACKS", default=1),
    "watch_declined_reviews": env.int("TRUST_WATCH_DECLINED_REVIEWS", default=2),
    "watch_min_refunds": env.int("TRUST_WATCH_MIN_REFUNDS", default=2),
    "watch_refund_rate": env.float("TRUST_WATCH_REFUND_RATE", default=0.5),
    # trusted: more lenient — a higher progress limit and small refunds after the window.
    "trusted_min_age_days": env.int("TRUST_TRUSTED_MIN_AGE_DAYS", default=180),
    "trusted_min_orders": env.int("TRUST_TRUSTED_MIN_ORDERS", default=5),
    "trusted_max_refund_rate": env.float("TRUST_TRUSTED_MAX_REFUND_RATE", default=0.1),
    "trusted_progress_pct": env.int("TRUST_TRUSTED_PROGRESS_PCT", default=20),
    "trusted_small_amount_major": env.int("TRUST_TRUSTED_SMALL_AMOUNT", default=50),
}
# Customer progress links stay valid this long.
REFUND_LINK_MAX_AGE = timedelta(days=env.int("REFUND_LINK_MAX_AGE_DAYS", default=90))

# --- Payouts and withdrawals (apps.payouts) -------------------------------------------------------
# Amounts are minor units of the movement's source currency (what the ledger is debited).
# At or above this a payout or withdrawal needs two different staff approvals (maker-checker).
PAYOUT_LARGE_AMOUNT = env.int("PAYOUT_LARGE_AMOUNT", default=10_000_000)
# Pre-check limits: one movement, and the rolling 24 h total per merchant (payouts) or customer (withdrawals).
PAYOUT_MAX_PER_TRANSACTION = env.int("PAYOUT_MAX_PER_TRANSACTION", default=100_000_000)
PAYOUT_DAILY_LIMIT = env.int("PAYOUT_DAILY_LIMIT", default=500_000_000)
WITHDRAWAL_MAX_PER_TRANSACTION = env.int("WITHDRAWAL_MAX_PER_TRANSACTION", default=5_000_000)
WITHDRAWAL_DAILY_LIMIT = env.int("WITHDRAWAL_DAILY_LIMIT", default=20_000_000)
# At most this many movements to one destination account within the window (this one included).
PAYOUT_FREQUENCY_MAX = env.int("PAYOUT_FREQUENCY_MAX", default=5)
PAYOUT_FREQUENCY_WINDOW = timedelta(minutes=env.int("PAYOUT_FREQUENCY_WINDOW_MINUTES", default=60))
# Same destination and same amount within this window → held as a suspected duplicate.
PAYOUT_DUPLICATE_WINDOW = timedelta(minutes=env.int("PAYOUT_DUPLICATE_WINDOW_MINUTES", default=1440))
# Destinations in another country than this (ISO 3166 alpha-2) are cross-border: reviewed by a person.
PAYOUT_HOME_COUNTRY = env.str("PAYOUT_HOME_COUNTRY", default="CN")
# The first movement to a destination never paid before goes to review instead of auto-approval.
PAYOUT_REVIEW_NEW_DESTINATION = env.bool("PAYOUT_REVIEW_NEW_DESTINATION", default=True)
# Merchant staff roles that may approve (platform operators with is_staff may too) — through the
# API, the admin and the console alike. Reviewers decide risk cases; money out is finance's.
PAYOUT_APPROVER_ROLES = env.list("PAYOUT_APPROVER_ROLES", default=["owner", "finance"])
# Second factor (django-otp, TOTP): the approval that completes a payout or withdrawal at or above
# PAYOUT_LARGE_AMOUNT carries a code from the approver's confirmed authenticator, enrolled on the
# console's security page. The issuer names RefundGuard in the authenticator app; a wrong code waits
# OTP_TOTP_THROTTLE_FACTOR × 2^(failures − 1) seconds before the next try is even checked.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="RefundGuard")
OTP_TOTP_THROTTLE_FACTOR = env.int("OTP_TOTP_THROTTLE_FACTOR", default=1)
# FX simulation: a class (dotted path) answering rate(base=, quote=) → Decimal | None, and the
# fixed-rate table the default source reads ("BASE:QUOTE": units of QUOTE per unit of BASE, as strings).
PAYOUT_FX_RATE_SOURCE = env.str("PAYOUT_FX_RATE_SOURCE", default="apps.payouts.fx.FixedRateSource")
PAYOUT_FX_FIXED_RATES = env.json(
    "PAYOUT_FX_FIXED_RATES",
    default={
        "USD:CNY": "7.1000",
        "EUR:CNY": "7.7000",
        "GBP:CNY": "9.0000",
        "HKD:CNY": "0.9100",
        "JPY:CNY": "0.0480",
        "SGD:CNY": "5.3000",
    },
)
# Movement timing, as for refunds (see the REFUND_* settings above for what each means).
PAYOUT_POLL_INTERVAL = timedelta(seconds=env.int("PAYOUT_POLL_INTERVAL_SECONDS", default=5))
PAYOUT_UNKNOWN_QUERY_DELAY = timedelta(seconds=env.int("PAYOUT_UNKNOWN_QUERY_DELAY_SECONDS", default=3))
PAYOUT_RETRY_BASE = timedelta(seconds=env.int("PAYOUT_RETRY_BASE_SECONDS", default=10))
PAYOUT_RETRY_CAP = timedelta(seconds=env.int("PAYOUT_RETRY_CAP_SECONDS", default=3600))
PAYOUT_MAX_RETRIES = env.int("PAYOUT_MAX_RETRIES", default=6)
PAYOUT_VERIFY_CHECKS = _verify_checks("PAYOUT_VERIFY_CHECKS_MINUTES", default=[1, 15, 120, 1440, 4320])
PAYOUT_SUBMIT_GRACE = timedelta(seconds=env.int("PAYOUT_SUBMIT_GRACE_SECONDS", default=30))
PAYOUT_POLL_BATCH = env.int("PAYOUT_POLL_BATCH", default=500)
PAYOUT_POLL_CHUNK = env.int("PAYOUT_POLL_CHUNK", default=50)
PAYOUT_POLL_CONCURRENCY = env.int("PAYOUT_POLL_CONCURRENCY", default=8)

# Requests larger than this are refused before parsing (bytes).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

# --- Rate limits (apps/common/throttling.py; README "Rate limits", docs/operations.md) ---------------
# Proxies in front of the app that append the client's address to X-Forwarded-For (deploy/nginx.conf
# is one). 0: the address is the TCP peer and X-Forwarded-For is ignored, since any client can send
# it. Set it to exactly the number of proxies: one too many lets a client choose its own address.
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
# DRF rate strings: "<requests>/<sec|min|hour|day>", each counted in fixed windows.
RATE_LIMITS = {
    # Every API request of one API key (a merchant's `api_rate_per_minute` overrides it, per key).
    "api_key": env.str("RATE_LIMIT_API_KEY", default="600/min"),
    # Every API request from one client address, whatever it authenticates as.
    "api_ip": env.str("RATE_LIMIT_API_IP", default="1200/min"),
    # Failed API authentications (bad, revoked or malformed keys) from one client address.
    "api_auth_failure": env.str("RATE_LIMIT_API_AUTH_FAILURES", default="20/min"),
    # Progress-link lookups from one client address that name no refund, withdrawal or statement.
    "progress_link_miss": env.str("RATE_LIMIT_PROGRESS_LINK_MISSES", default="30/hour"),
    # Webhook deliveries per channel: each bank channel, and Twilio's status callbacks, counted apart.
    "webhook_channel": env.str("RATE_LIMIT_WEBHOOK_CHANNEL", default="1200/min"),
}
# Console and admin sign-in (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one
# username from one address, that username is locked out from that address for
# LOGIN_LOCKOUT_MINUTES (each further attempt restarts it), right password or not; other users
# and addresses sign in as before. Attempts live in the database (the admin lists them and can
# unlock): they outlive a Redis restart, and the embedded setup needs nothing more.
AXES_ENABLED = env.bool("LOGIN_LOCKOUT_ENABLED", default=True)
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "apps.common.throttling.client_ip"
AXES_LOCKOUT_CALLABLE = "apps.accounts.lockout.login_locked_out"

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.accounts.permissions.IsMerchantMember"],
    "DEFAULT_PARSER_CLASSES": ["apps.common.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "apps.common.pagination.StrictLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.common.exception_handler.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.common.throttling.ClientIpThrottle",
        "apps.accounts.throttling.ApiKeyThrottle",
    ],
    "NUM_PROXIES": NUM_PROXIES,
    "DEFAULT_SCHEMA_CLASS": "apps.common.schema.ApiAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RefundGuard API",
    "DESCRIPTION": (
        "Refunds, payouts and withdrawals that arrive once, for the right amount. "
        "Amounts are integers in minor units with an ISO 4217 currency. "
        "Authenticate with `Authorization: Bearer <api key>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # Request bodies are closed objects, as the server's strict serializers are (apps/common/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.common.schema.refuse_unknown_properties",
    ],
    # Swagger UI assets ship with the app: the docs page works without internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ProductKindEnum": "apps.orders.models.Product.Kind",
        "UsageKindEnum": "apps.orders.models.UsageEvent.Kind",
        "RefundStatusEnum": "apps.refunds.models.Refund.Status",
        "CaseStatusEnum": "apps.risk.models.Case.Status",
        "CaseDecisionEnum": "apps.risk.models.Case.Decision",
        "ReviewerDecisionEnum": "apps.risk.services.REVIEWER_DECISION_CHOICES",
        "ListEntryKindEnum": "apps.risk.models.ListEntry.Kind",
        "ReconciliationStatusEnum": "apps.ledger.models.Reconciliation.Status",
        "ReconciliationItemKindEnum": "apps.ledger.models.ReconciliationItem.Kind",
        "DisbursementStatusEnum": "apps.payouts.models.Disbursement.Status",
        "IncidentStatusEnum": "apps.payouts.models.Incident.Status",
        "AlertStatusEnum": "apps.alerts.models.Alert.Status",
        "CommissionPlanModeEnum": "apps.commissions.models.CommissionPlan.Mode",
        "RuleModeEnum": "apps.risk.models.Rule.Mode",
        "CommissionStatusEnum": "apps.commissions.models.Commission.Status",
        "CurrencyEnum": [(code, code) for code in SUPPORTED_CURRENCIES],
    },
}

# --- Security headers (every page, DEBUG or not) -----------------------------------------------
# Content-Security-Policy (django-csp): scripts, styles, images, connections only from this origin —
# no inline script or style, no eval; the console and progress pages keep their scripts in static
# files and pass data in data-* attributes; WebSockets to this host are 'self' (CSP Level 3).
# Not to be framed anywhere (frame-ancestors, and X-Frame-Options for older browsers).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
# Where browsers report violations (env CSP_REPORT_URI); unset: no reports. Read into the policy, not
# kept as a setting: django-csp 4 refuses to start beside any CSP_* setting (its old format).
if _csp_report_uri := env.str("CSP_REPORT_URI", default=""):
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["report-uri"] = [_csp_report_uri]
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Permissions-Policy (django-permissions-policy): no page uses these browser features.
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "usb",
    )
}

# --- Security (production) ---------------------------------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- Commissions (apps.commissions) ----------------------------------------------------------------
# Days a commission stays pending (refund window) before it can be settled into the balance.
COMMISSION_SETTLEMENT_DAYS = env.int("COMMISSION_SETTLEMENT_DAYS", default=7)
# How long a distributor's signed statement link (/r/c/<token>/) stays valid.
COMMISSION_LINK_MAX_AGE = timedelta(days=env.int("COMMISSION_LINK_MAX_AGE_DAYS", default=90))
# Abuse signal: a distributor with at least MIN_PAID commissions paid in WINDOW_DAYS, of which at
# least RATE were clawed back after payment, goes on the risk engine's watch list.
COMMISSION_ABUSE_WINDOW_DAYS = env.int("COMMISSION_ABUSE_WINDOW_DAYS", default=30)
COMMISSION_ABUSE_MIN_PAID = env.int("COMMISSION_ABUSE_MIN_PAID", default=5)
COMMISSION_ABUSE_RATE = env.float("COMMISSION_ABUSE_RATE", default=0.30)
