from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="chat"),
    path("shared/<str:token>/", views.shared, name="shared"),
    path("account/", views.account, name="account"),
]
