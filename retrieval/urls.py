from django.urls import path

from . import sso, views

urlpatterns = [
    path("library/", views.library, name="library"),
    path("library/collections/<int:collection_id>/", views.library_collection, name="library_collection"),
    path("library/documents/<int:document_id>/", views.document_passages, name="document_passages"),
    path("keys/", views.api_keys, name="api_keys"),
    path("keys/<int:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    # Sign-in (Django's form, which CONTRACT names, with the single sign-on policy) and sign-out.
    path("accounts/login/", views.sign_in, name="login"),
    # Accounts are made by admins (admin, `manage.py create_user`) with a password handed over:
    # each person changes it here, which also signs out their other sessions.
    path("accounts/password/", views.password_change, name="password_change"),
    path("accounts/password/done/", views.password_change_done, name="password_change_done"),
    path("accounts/logout/", sso.SignOutView.as_view(), name="logout"),
    # Password reset by email (with EMAIL_HOST set; 404 otherwise). Django's names, which its views
    # redirect to.
    path("accounts/password/reset/", views.password_reset, name="password_reset"),
    path("accounts/password/reset/sent/", views.password_reset_sent, name="password_reset_done"),
    path("accounts/reset/<uidb64>/<token>/", views.password_reset_confirm, name="password_reset_confirm"),
    path("accounts/reset/done/", views.password_reset_complete, name="password_reset_complete"),
    # Single sign-on with OpenID Connect (with DOCENT_OIDC_ISSUER set; 404 otherwise).
    path("accounts/sso/login/", sso.SsoLoginView.as_view(), name="sso_login"),
    path("accounts/sso/callback/", sso.SsoCallbackView.as_view(), name="sso_callback"),
    path("accounts/sso/backchannel-logout/", sso.backchannel_logout, name="sso_backchannel_logout"),
]
