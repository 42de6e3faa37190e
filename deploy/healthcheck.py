"""Container health check for the web (gunicorn) and ws (daphne) services: GET /healthz.

    python deploy/healthcheck.py [PORT]        (default: $PORT, else 8000)

Exit 0 when /healthz answers 200 with "status": "ok", 1 otherwise. Standard library only, so it
does not import Django (cheap enough to run every few seconds). The request carries a Host taken
from ALLOWED_HOSTS (so Django's host check passes whatever the deployment allows) and
X-Forwarded-Proto: https (so SECURE_SSL_REDIRECT does not answer with a redirect), as the reverse
proxy would send.
"""

from __future__ import annotations

import http.client
import json
import os
import sys


def _host() -> str:
    for entry in os.environ.get("ALLOWED_HOSTS", "").split(","):
        entry = entry.strip()
        if entry and entry != "*":
            # ".example.com" allows example.com and its subdomains.
            return entry.lstrip(".")
    return "localhost"


def main() -> int:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("PORT", "8000"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz", headers={"Host": _host(), "X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        body = response.read()
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if response.status != 200:
        print(f"unhealthy: HTTP {response.status}", file=sys.stderr)
        return 1
    try:
        status = json.loads(body).get("status")
    except ValueError:
        status = None
    if status != "ok":
        print(f"unhealthy: {body[:200]!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
