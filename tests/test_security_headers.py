"""Every page type carries the Content-Security-Policy and the other security headers, and no
template needs an inline script or style the policy would have to allow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from apps.accounts.models import User
from tests.console.support import alert, reviewed_refund, staff
from tests.track.test_progress_pages import make_refund, url

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]
CONSOLE_PAGES = ["/console/", "/console/alerts/", "/console/cases/", "/console/refunds/", "/console/reports/"]


def inline_scripts(html: str) -> list[str]:
    """<script> tags that would run inline code (JSON data blocks are not run, CSP leaves them be)."""
    tags = re.findall(r"<script\b[^>]*>", html)
    return [tag for tag in tags if "src=" not in tag and 'type="application/json"' not in tag]


def assert_secure(response, what: str) -> None:
    assert response.status_code == 200, (what, response.status_code)
    policy = response.get("Content-Security-Policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert directives.get("default-src") == ["'self'"], (what, policy)
    assert directives.get("script-src") == ["'self'"], (what, policy)
    assert directives.get("style-src") == ["'self'"], (what, policy)
    assert directives.get("frame-ancestors") == ["'none'"], (what, policy)
    assert directives.get("object-src") == ["'none'"], (what, policy)
    assert "'unsafe-inline'" not in policy, (what, policy)
    assert "'unsafe-eval'" not in policy, (what, policy)
    assert response["X-Content-Type-Options"] == "nosniff", what
    assert response["Referrer-Policy"] == "same-origin", what
    assert response["X-Frame-Options"] == "DENY", what
    assert response["Cross-Origin-Opener-Policy"] == "same-origin", what
    assert "camera=()" in response["Permissions-Policy"], what
    assert "geolocation=()" in response["Permissions-Policy"], what
    if response["Content-Type"].startswith("text/html"):
        html = response.content.decode()
        assert inline_scripts(html) == [], what
        assert not re.search(r"<style\b", html), what
        assert not re.search(r"\son[a-z]+\s*=", html), what
        assert not re.search(r"\sstyle\s*=", html), what


def test_console_pages_carry_the_headers(merchant):
    client = Client()
    client.force_login(staff(merchant, User.Role.OWNER))
    reviewed_refund(merchant)
    alert(merchant)
    for page in CONSOLE_PAGES:
        assert_secure(client.get(page), page)


def test_progress_pages_carry_the_headers(client):
    refund = make_refund()
    assert_secure(client.get(url(refund)), "progress page")
    assert_secure(client.get(url(refund, "zh-hans")), "progress page zh-hans")


def test_login_and_admin_pages_carry_the_headers(client):
    assert_secure(client.get("/accounts/login/"), "console login")
    assert_secure(client.get("/admin/login/"), "admin login")
    admin = User.objects.create_superuser(username="root", password="pw-for-tests-only", email="r@example.com")
    client.force_login(admin)
    assert_secure(client.get("/admin/"), "admin index")
    assert_secure(client.get("/admin/accounts/customer/"), "admin changelist")
    assert_secure(client.get("/admin/accounts/customer/add/"), "admin add form")


def test_api_docs_carry_the_headers_and_load_their_script_from_this_origin(client):
    response = client.get("/api/docs/")
    assert_secure(response, "api docs")
    scripts = re.findall(r'<script\b[^>]*src="([^"]+)"', response.content.decode())
    assert scripts, response.content
    assert all(src.startswith("/") for src in scripts), scripts
    assert any("script=" in src for src in scripts), scripts


def test_api_responses_carry_the_headers(api):
    assert_secure(api.get("/api/v1/customers"), "api list")


def test_no_template_has_an_inline_script_or_handler():
    for template in [*ROOT.glob("templates/**/*.html"), *ROOT.glob("apps/*/templates/**/*.html")]:
        text = template.read_text()
        assert inline_scripts(text) == [], template
        assert not re.search(r"\son(click|change|submit|input|load|error)\s*=", text), template
        assert not re.search(r"\sstyle\s*=", text), template
