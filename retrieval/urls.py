from django.urls import path

from . import views

urlpatterns = [
    path("library/", views.library, name="library"),
    path("library/collections/<int:collection_id>/", views.library_collection, name="library_collection"),
    path("library/documents/<int:document_id>/", views.document_passages, name="document_passages"),
    path("keys/", views.api_keys, name="api_keys"),
    path("keys/<int:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
]
