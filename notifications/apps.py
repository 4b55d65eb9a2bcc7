from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # tenants knows nothing of sockets: its key events reach them through these receivers.
        from notifications.key_events import key_events_connect

        key_events_connect()
