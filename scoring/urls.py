from django.urls import path

from . import views

app_name = "scoring"
urlpatterns = [
    path("models/", views.model_list, name="models"),
    path("models/train/", views.model_train, name="model-train"),
    path("models/<int:pk>/promote/", views.model_promote, name="model-promote"),
    path("strategies/", views.strategy_list, name="strategies"),
    path("experiments/", views.experiment_list, name="experiments"),
]
