from django.urls import path

from apps.common.routes import resource_paths
from apps.risk import api

urlpatterns = [
    *resource_paths(
        "rules", "rule", api.RuleListCreateView, api.RuleDetailView, actions=[api.RuleVersionsView, api.RuleStatsView]
    ),
    # A collection-level action: back-test an expression on recorded requests (nothing stored).
    path("rules/test", api.RuleTestView.as_view(), name="rule-test"),
    *resource_paths("cases", "case", api.CaseListView, api.CaseDetailView, actions=api.CASE_ACTIONS),
    *resource_paths("lists", "list-entry", api.ListEntryListCreateView, api.ListEntryDetailView),
]
