from django.apps import AppConfig


class HeraldConfig(AppConfig):
    name = "herald"
