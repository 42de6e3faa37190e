from django.urls import path

from apps.notifications import views as notification_views
from apps.track import views

app_name = "track"
urlpatterns = [
    path("<str:token>/", views.refund_progress, name="refund"),
    path("w/<str:token>/", views.withdrawal_progress, name="withdrawal"),
    path("c/<str:token>/", views.commission_statement, name="commission-statement"),
    path("<str:token>/inbox/", notification_views.customer_inbox, name="inbox"),
]
