# RefundGuard production image: one image, several roles (see docker-compose.yml and Procfile).
#   web     gunicorn sync workers (the default CMD)      ws    daphne, WebSockets only (/ws/...)
#   worker  celery worker                                 beat  celery beat (exactly one)
#   migrate python manage.py migrate --noinput (one-shot, before web/worker/beat)
# Configuration comes from the environment only; .env.example lists every variable.
FROM python:3.11-slim

# DEBUG=false: safe by default, the settings refuse to load without SECRET_KEY and
# FIELD_ENCRYPTION_KEY. REFUNDGUARD_VAR_DIR holds runtime state and STATIC_ROOT (var/static,
# filled below), so keep it at /app/var and mount no volume over it; the app user may write
# only there.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    DEBUG=false \
    REFUNDGUARD_VAR_DIR=/app/var \
    PORT=8000 \
    WS_PORT=8001

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes. All wheels
# (psycopg[binary], cryptography, twisted) are manylinux builds: no compiler or libpq needed.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# The application, copied explicitly so that a local .venv, var/ (SQLite, broker), .git or a .env
# never ends up in the image. Add new top-level code directories here (e.g. locale/ once it exists).
COPY manage.py Procfile ./
COPY refundguard ./refundguard
COPY apps ./apps
COPY templates ./templates
COPY static ./static
COPY deploy ./deploy

# Static files are collected at build time and served by WhiteNoise from the image. The keys are
# throwaway values that exist only for this command (the settings refuse to load without them
# when DEBUG is off); the real ones come from the environment at run time. Importing the settings
# without REDIS_URL prepares the embedded broker folder, which the image does not need.
RUN DEBUG=false \
    SECRET_KEY=build-only-collectstatic-not-a-secret-0123456789abcdef \
    FIELD_ENCRYPTION_KEY=YnVpbGQtb25seS1jb2xsZWN0c3RhdGljLWtleS0wMDA= \
    python manage.py collectstatic --noinput \
    && rm -rf /app/var/broker \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /app/var \
    && chown -R app:app /app/var

USER app

EXPOSE 8000 8001

# Same as the Procfile's web process; PORT and WEB_CONCURRENCY may be overridden at run time.
CMD ["sh", "-c", "exec gunicorn refundguard.wsgi:application --bind 0.0.0.0:${PORT:-8000} --workers ${WEB_CONCURRENCY:-4} --access-logfile -"]
