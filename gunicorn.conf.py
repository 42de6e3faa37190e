"""gunicorn settings read by every `gunicorn` started from the project root (Procfile, Dockerfile,
bench/): command-line flags still set the bind address and worker count."""


def post_worker_init(worker) -> None:
    """Warm each worker before it accepts requests (refundguard/warmup.py)."""
    from refundguard.warmup import warm_up

    worker.log.info("worker %s warmed up in %.0f ms", worker.pid, warm_up() * 1000)
