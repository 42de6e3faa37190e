"""The page a locked-out sign-in gets (django-axes' AXES_LOCKOUT_CALLABLE): console and admin."""

from __future__ import annotations

import math

from django.conf import settings
from django.shortcuts import render


def login_locked_out(request, response=None, credentials=None, *args, **kwargs):
    """429 with Retry-After, in the console's look: no password is checked until the cool-off ends."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    context = {"minutes": max(1, math.ceil(seconds / 60)), "login_url": settings.LOGIN_URL}
    answer = render(request, "registration/locked_out.html", context, status=429)
    answer["Retry-After"] = str(seconds)
    return answer
