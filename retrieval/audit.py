"""The audit log: who did what, when and from where. `record` writes one event inside the caller's
transaction (an action rolled back leaves none), with the id and address of the request being
served, if any (`assistant.logs`); the worker and management commands record as the system."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.db import models
from django.utils import timezone

from assistant import logs

from .models import AuditEvent

# Each action, in words (the admin's and the library's "what happened").
ACTIONS = {
    "sign_in": "signed in",
    "sign_in_failed": "failed to sign in",
    "sign_out": "signed out",
    "password_change": "changed their password",
    "team_delete": "deleted the team",
    "member_add": "added a member",
    "member_role": "changed a member's role",
    "member_remove": "removed a member",
    "collection_create": "created the collection",
    "collection_update": "changed the collection",
    "collection_share": "changed who reads the collection",
    "collection_delete": "deleted the collection",
    "document_upload": "uploaded a document",
    "document_retry": "read a document again",
    "collection_retry": "read the collection's failed documents again",
    "document_rename": "renamed a document",
    "document_delete": "deleted a document",
    "web_source_add": "added a web source",
    "web_source_update": "changed a web source",
    "web_source_remove": "removed a web source",
    "api_key_create": "created an API key",
    "api_key_revoke": "revoked an API key",
    "conversation_share": "shared a conversation",
    "conversation_unshare": "stopped sharing a conversation",
    "conversations_expire": "deleted conversations past the retention",
    "admin_add": "added an object in Django admin",
    "admin_change": "changed an object in Django admin",
    "admin_delete": "deleted an object in Django admin",
}


def record(
    action: str,
    *,
    actor=None,
    target: models.Model | None = None,
    name: str | None = None,
    team=None,
    details: dict | None = None,
    target_ref: tuple[str, str] | None = None,
) -> AuditEvent:
    """Write one event. `target`: the object acted on (its kind, id and, unless `name` is given,
    its name as it is now), or `target_ref` (its kind and id) for one that may be gone; `team`: the
    team it concerns (its admins see it); `actor`: None for the system."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    address = logs.client_address.get()
    try:
        ipaddress.ip_address(address or "")
    except ValueError:
        address = None  # a test client's or a socket's address that is no IP
    if target is not None:
        kind, pk = target._meta.model_name, "" if target.pk is None else str(target.pk)
    else:
        kind, pk = target_ref or ("", "")
    return AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username() if user else "",
        action=action,
        team_id=getattr(team, "pk", team),
        target_type=kind,
        target_id=pk,
        target=(name if name is not None else str(target) if target is not None else "")[:300],
        details=details or {},
        ip=address,
        request_id=logs.request_id.get() or "",
    )


def purge_old() -> int:
    """Delete events older than `DOCENT_AUDIT_RETENTION_DAYS` (0: kept for ever); how many."""
    days = settings.DOCENT_AUDIT_RETENTION_DAYS
    if not days:
        return 0
    return AuditEvent.objects.filter(at__lt=timezone.now() - timezone.timedelta(days=days)).delete()[0]


def _signed_in(sender, request, user, **_) -> None:
    via = "single sign-on" if "sso" in (getattr(user, "backend", "") or "").lower() else "password"
    record("sign_in", actor=user, target=user, details={"via": via})


def _sign_in_failed(sender, credentials, request=None, **_) -> None:
    if "nonce" in credentials:
        return  # single sign-on: recorded with its reason where the callback fails (`sso._failed`)
    # Django has already masked what looks like a secret in `credentials`; only the name is kept.
    name = str(credentials.get("username", ""))[:150]
    record("sign_in_failed", name=name, details={"username": name, "via": "password"})


def _signed_out(sender, request, user, **_) -> None:
    if user is not None:
        record("sign_out", actor=user, target=user)


def _admin_logged(sender, instance, created, **_) -> None:
    """Every add, change and deletion made in Django admin's forms and actions (its "Recent
    actions"), so that the audit log holds them all; staff's, with no team (the services that such
    an admin action calls may record their own event too)."""
    from django.contrib.admin.models import ADDITION, CHANGE, DELETION

    action = {ADDITION: "admin_add", CHANGE: "admin_change", DELETION: "admin_delete"}
    if not created or instance.action_flag not in action:
        return
    kind = instance.content_type.model if instance.content_type_id else ""
    record(
        action[instance.action_flag],
        actor=instance.user,
        name=instance.object_repr,
        target_ref=(kind, str(instance.object_id or "")),
        details={"change": instance.get_change_message()} if instance.action_flag == CHANGE else {},
    )


def connect() -> None:
    from django.contrib.admin.models import LogEntry
    from django.contrib.auth import signals
    from django.db.models.signals import post_save

    post_save.connect(_admin_logged, sender=LogEntry, dispatch_uid="docent-audit-admin")
    signals.user_logged_in.connect(_signed_in, dispatch_uid="docent-audit-sign-in")
    signals.user_login_failed.connect(_sign_in_failed, dispatch_uid="docent-audit-sign-in-failed")
    signals.user_logged_out.connect(_signed_out, dispatch_uid="docent-audit-sign-out")
