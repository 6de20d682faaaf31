import functools
import time

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import (
    AuthenticationForm,
    PasswordChangeForm,
    PasswordResetForm,
    SetPasswordForm,
)
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import audit, selectors, services, sso
from .api import document_out
from .models import Collection, Document
from .parsing import EXTENSIONS, FOLDER_EXTENSIONS, FOLDER_NAMES, FOLDER_SKIPPED, SUPPORTED_NAMES

LIBRARY_ROWS = 20  # per collection; the page finds the others by name or status through the API


def _shown(collections: list, *, user) -> dict:
    """Marks each collection with what the user may do with it and its most recent documents; the
    page's other context (what uploads take, the teams to share with)."""
    administered = selectors.team_ids_administered(user=user)
    teams = list(selectors.teams_for_user(user=user))
    team_ids = {t.id for t in teams}
    recent = selectors.recent_documents_by_collection(
        user=user, per=LIBRARY_ROWS, collection_ids=[c.id for c in collections]
    )
    sources = selectors.web_source_counts(collection_ids=[c.id for c in collections])
    for collection in collections:
        collection.can_manage = collection.team_id in administered
        collection.can_write = collection.team_id in team_ids  # one shared with them is read-only
        collection.shared_ids = {t.id for t in collection.shared_with.all()}
        collection.web_source_count = sources.get(collection.id, 0)
        collection.recent = [
            document_out(d) | {"kind_label": d.get_kind_display()} for d in recent.get(collection.id, [])
        ]
    return {
        "collections": collections,
        "teams": teams,
        "administered": administered,
        # The file picker offers what the parser takes; the page's folder upload takes its own list.
        "accept": ",".join(EXTENSIONS),
        "folder_accept": ",".join(FOLDER_EXTENSIONS),
        "folder_supported": FOLDER_NAMES,
        "folder_skipped": ",".join(FOLDER_SKIPPED),
        "supported": SUPPORTED_NAMES,
        "languages": Collection._meta.get_field("language").choices,
        # The rows the page adds itself name their type as the listed ones do.
        "kinds": dict(Document.Kind.choices),
        # A team admin shares a collection with any other team (to read only).
        "all_teams": list(selectors.teams_all()) if administered else [],
        "web_max_pages": settings.DOCENT_WEB_MAX_PAGES,
    }


@login_required
def library(request):
    since = time.time()  # before the reads: a document made while they run is news to the page
    collections = list(selectors.collections_for_user(user=request.user).prefetch_related("shared_with"))
    context = _shown(collections, user=request.user) | {"since": f"{since:.3f}"}
    return render(request, "retrieval/library.html", context)


@login_required
def library_collection(request, collection_id: int):
    """One collection's section of the library page: an open page adds it when the collection is
    newly shared with the user's team."""
    collection = (
        selectors.collections_for_user(user=request.user)
        .prefetch_related("shared_with")
        .filter(id=collection_id)
        .first()
    )
    if collection is None:
        raise Http404("no such collection")
    context = _shown([collection], user=request.user) | {"c": collection}
    return render(request, "retrieval/_collection.html", context)


PASSAGES_PER_PAGE = 50


@login_required
def document_passages(request, document_id: int):
    """The passages a document was cut into, as search and the chat see them: to check how it was
    read (a table, a scanned page, a heading) when an answer from it looks wrong."""
    try:
        document = selectors.document_get(user=request.user, document_id=document_id)
    except Document.DoesNotExist:
        raise Http404("no such document") from None
    chunk = request.GET.get("chunk", "")
    if chunk.isdigit():
        # A cited passage (the chat's source panel links here): its page, scrolled to and marked.
        ordinal = selectors.document_chunk_ordinal(document=document, chunk_id=int(chunk))
        if ordinal is not None:
            number = ordinal // PASSAGES_PER_PAGE + 1
            return redirect(f"{request.path}?page={number}#passage-{ordinal + 1}")
    page = Paginator(selectors.document_chunks(document=document), PASSAGES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "retrieval/document.html", {"document": document, "page": page})


@login_required
def api_keys(request):
    """The user's own API keys: make one (its value shown in this response only), list, revoke."""
    context = {}
    if request.method == "POST":
        name = request.POST.get("name", "").strip()[:100]
        if not name:
            context["error"] = "Give the key a name, to tell it apart later."
        else:
            context["new_key"], context["raw_key"] = services.api_key_create(user=request.user, name=name)
    context["keys"] = selectors.api_keys_for_user(user=request.user)
    context["base_url"] = request.build_absolute_uri("/").rstrip("/")
    response = render(request, "retrieval/keys.html", context)
    response["Cache-Control"] = "no-store"  # a new key must not stay in a cache
    return response


@login_required
@require_POST
def api_key_revoke(request, key_id: int):
    if not services.api_key_revoke(user=request.user, key_id=key_id):
        raise Http404("no such key")
    return redirect("api_keys")


class _PasswordResetForm(PasswordResetForm):
    """Django's form; the links are made and sent by a worker (`services.password_reset_request`)."""

    def save(self, *, request, **_):
        services.password_reset_request(
            email=self.cleaned_data["email"], base_url=request.build_absolute_uri("/")
        )


def _when_email(view):
    """Password reset by email exists only with a mail server to send it (`EMAIL_HOST`)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not settings.DOCENT_PASSWORD_RESET:
            raise Http404("password reset by email is off")
        return view(request, *args, **kwargs)

    return wrapped


password_reset = _when_email(auth_views.PasswordResetView.as_view(form_class=_PasswordResetForm))
password_reset_sent = _when_email(auth_views.PasswordResetDoneView.as_view())


class _AuditedSetPasswordForm(SetPasswordForm):
    def save(self, commit=True):
        user = super().save(commit)
        audit.record("password_change", actor=user, target=user, details={"via": "reset link"})
        return user


class _AuditedPasswordChangeForm(PasswordChangeForm):
    def save(self, commit=True):
        user = super().save(commit)
        audit.record("password_change", actor=user, target=user, details={"via": "account"})
        return user


# Each person changes their own password here, which also signs out their other sessions.
password_change = auth_views.PasswordChangeView.as_view(form_class=_AuditedPasswordChangeForm)
password_change_done = auth_views.PasswordChangeDoneView.as_view()
password_reset_confirm = _when_email(
    auth_views.PasswordResetConfirmView.as_view(form_class=_AuditedSetPasswordForm)
)
password_reset_complete = _when_email(auth_views.PasswordResetCompleteView.as_view())


class SignInForm(AuthenticationForm):
    """Django's sign-in form, refusing a right password where sign-in goes through the provider,
    saying where to go instead."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That username and password did not match. Try again.",
    }

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        sso.password_check(user)


sign_in = auth_views.LoginView.as_view(authentication_form=SignInForm)


SSO_FAILURES = {
    "failed": "Single sign-on did not sign you in: the provider's answer could not be checked. Try again.",
    "unavailable": "Single sign-on is not answering just now. Try again later.",
    "denied": "Single sign-on was cancelled, or the provider did not let you in.",
    "no-account": "You have no Docent account yet. Ask an administrator to make one.",
    "inactive": "Your Docent account is turned off. Ask an administrator.",
    "ambiguous": "More than one Docent account holds your email address. Ask an administrator to keep it on one.",
    "password-account": "This account signs in with its password.",
    "not-allowed": "Your account at the provider is in no group that may use Docent. Ask an administrator.",
}


def accounts(request) -> dict:
    """Template context: whether the sign-in page offers a reset by email and single sign-on, and
    why a sign-in with the provider just failed."""
    context = {"password_reset": settings.DOCENT_PASSWORD_RESET, "sso_name": "", "password_sign_in": True}
    if sso.enabled():
        context["sso_name"] = settings.DOCENT_OIDC_NAME
        context["password_sign_in"] = settings.DOCENT_PASSWORD_SIGN_IN
        context["sso_failure"] = SSO_FAILURES.get(request.GET.get("sso", ""), "")
    return context
