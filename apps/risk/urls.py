from django.urls import path

from apps.common.routes import resource_paths
from apps.risk import api

urlpatterns = [
    *resource_paths(
        "rules",
        "rule",
        list_view=api.RuleListCreateView,
        detail_view=api.RuleDetailView,
        actions={"versions": api.RuleVersionsView, "stats": api.RuleStatsView},
    ),
    # A collection-level action: back-test an expression on recorded requests (nothing stored).
    path("rules/test", api.RuleTestView.as_view(), name="rule-test"),
    *resource_paths(
        "cases",
        "case",
        list_view=api.CaseListView,
        detail_view=api.CaseDetailView,
        actions={"assign": api.CaseAssignView, "decide": api.CaseDecideView, "notes": api.CaseNotesView},
    ),
    *resource_paths("lists", "list-entry", list_view=api.ListEntryListCreateView, detail_view=api.ListEntryDetailView),
]
