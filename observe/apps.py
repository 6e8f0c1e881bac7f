from django.apps import AppConfig


class ObserveConfig(AppConfig):
    name = "observe"
    verbose_name = "Observe"
