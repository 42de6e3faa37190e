from django.urls import path

from apps.risk import api

urlpatterns = [
    path("rules", api.RuleListCreateView.as_view(), name="rule-list"),
    path("rules/test", api.RuleTestView.as_view(), name="rule-test"),
    path("rules/<int:pk>", api.RuleDetailView.as_view(), name="rule-detail"),
    path("rules/<int:pk>/versions", api.RuleVersionsView.as_view(), name="rule-versions"),
    path("rules/<int:pk>/stats", api.RuleStatsView.as_view(), name="rule-stats"),
    path("cases", api.CaseListView.as_view(), name="case-list"),
    path("cases/<int:pk>", api.CaseDetailView.as_view(), name="case-detail"),
    path("cases/<int:pk>/assign", api.CaseAssignView.as_view(), name="case-assign"),
    path("cases/<int:pk>/decide", api.CaseDecideView.as_view(), name="case-decide"),
    path("cases/<int:pk>/notes", api.CaseNotesView.as_view(), name="case-notes"),
    path("lists", api.ListEntryListCreateView.as_view(), name="list-entry-list"),
    path("lists/<int:pk>", api.ListEntryDetailView.as_view(), name="list-entry-detail"),
]
