"""Reads. Every object a user reaches goes through that user's team memberships."""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.utils import timezone

from .models import ApiKey, Collection, Document, Team


def teams_for_user(*, user) -> QuerySet[Team]:
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user)


def collections_for_user(*, user) -> QuerySet[Collection]:
    if not user.is_authenticated:
        return Collection.objects.none()
    return (
        Collection.objects.filter(team__memberships__user=user)
        .select_related("team")
        .annotate(document_count=Count("documents", distinct=True))
        .order_by("team__name", "name")
    )


def collection_ids_for_user(*, user) -> list[int]:
    if not user.is_authenticated:
        return []
    return list(Collection.objects.filter(team__memberships__user=user).values_list("id", flat=True))


def collection_get(*, user, collection_id: int) -> Collection:
    """The collection if the user may read it; DoesNotExist otherwise (shown as 404, never 403)."""
    return Collection.objects.select_related("team").get(id=collection_id, team__memberships__user=user)


def documents_for_user(*, user, collection_id: int | None = None) -> QuerySet[Document]:
    qs = Document.objects.filter(collection__team__memberships__user=user).select_related("collection")
    if collection_id is not None:
        qs = qs.filter(collection_id=collection_id)
    return qs


def document_get(*, user, document_id: int) -> Document:
    return documents_for_user(user=user).get(id=document_id)


def document_status_counts() -> dict[str, int]:
    return dict(Document.objects.order_by().values_list("status").annotate(n=Count("id")))


def api_key_user(*, raw: str):
    """The active user owning this API key, or None."""
    from .services import api_key_hash

    key = (
        ApiKey.objects.select_related("user")
        .filter(hashed_key=api_key_hash(raw), revoked_at__isnull=True)
        .first()
    )
    if key is None or not key.user.is_active:
        return None
    if key.last_used_at is None or (timezone.now() - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(id=key.id).update(last_used_at=timezone.now())
    return key.user
