from django.urls import path, re_path, register_converter

from apps.console import audit_log, views


class _IdConverter:
    """A primary key that fits a bigint: longer digit runs are a 404, never a database error."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(value)


register_converter(_IdConverter, "console_id")

app_name = "console"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("alerts/", views.alert_list, name="alert_list"),
    path("alerts/<console_id:pk>/", views.alert_detail, name="alert_detail"),
    path("alerts/<console_id:pk>/ack", views.alert_ack_view, name="alert_ack"),
    path("alerts/<console_id:pk>/resolve", views.alert_resolve_view, name="alert_resolve"),
    path("alerts/<console_id:pk>/silence", views.alert_silence_view, name="alert_silence"),
    path("cases/", views.case_list, name="case_list"),
    path("cases/<console_id:pk>/", views.case_detail, name="case_detail"),
    path("cases/<console_id:pk>/decide", views.case_decide_view, name="case_decide"),
    path("refunds/", views.refund_list, name="refund_list"),
    path("refunds/<console_id:pk>/", views.refund_detail, name="refund_detail"),
    path("approvals/", views.approval_list, name="approval_list"),
    re_path(r"^(?P<kind>payouts|withdrawals)/$", views.disbursement_list, name="disbursement_list"),
    re_path(
        r"^(?P<kind>payouts|withdrawals)/(?P<pk>[0-9]{1,18})/$", views.disbursement_detail, name="disbursement_detail"
    ),
    re_path(
        r"^(?P<kind>payouts|withdrawals)/(?P<pk>[0-9]{1,18})/approve$",
        views.disbursement_approve_view,
        name="disbursement_approve",
    ),
    path("commissions/", views.commission_statement, name="commission_statement"),
    path("rules/", views.rule_list, name="rule_list"),
    path("rules/<console_id:pk>/mode", views.rule_mode_view, name="rule_mode"),
    path("rules/test", views.rule_test_view, name="rule_test"),
    path("rules/<console_id:pk>/test", views.rule_test_existing_view, name="rule_test_existing"),
    path("reports/", views.reports, name="reports"),
    path("audit/", audit_log.audit_list, name="audit_list"),
    path("reports/<str:name>.csv", views.report_csv, name="report_csv"),
    path("security/", views.security_page, name="security"),
]
