from django.urls import path

from . import views

app_name = "reminders"
urlpatterns = [
    path("", views.reminder_list, name="list"),
    path("<int:pk>/requeue/", views.reminder_requeue, name="requeue"),
    path("<int:pk>/cancel/", views.reminder_cancel, name="cancel"),
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/<int:pk>/read/", views.notification_read, name="notification-read"),
]
