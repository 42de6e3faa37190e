"""The merchant API's URL convention in one place: a collection at `<collection>`, one row at
`<collection>/<pk>`, an action on a row at `<collection>/<pk>/<action>`; the route names follow
(`<name>-list`, `<name>-detail`, `<name>-<action>`), so `reverse()` in code and tests can guess them."""

from __future__ import annotations

from collections.abc import Iterable

from django.urls import URLPattern, path
from django.views import View


def resource_paths(
    collection: str,
    name: str,
    list_view: type[View] | None = None,
    detail_view: type[View] | None = None,
    *,
    actions: Iterable[type[View]] = (),
) -> list[URLPattern]:
    """The routes of one resource: its list (and create), its detail and each action on one row,
    which the action's view names itself (`action_name`)."""
    patterns = []
    if list_view is not None:
        patterns.append(path(collection, list_view.as_view(), name=f"{name}-list"))
    if detail_view is not None:
        patterns.append(path(f"{collection}/<int:pk>", detail_view.as_view(), name=f"{name}-detail"))
    for view in actions:
        action = view.action_name
        patterns.append(path(f"{collection}/<int:pk>/{action}", view.as_view(), name=f"{name}-{action}"))
    return patterns
