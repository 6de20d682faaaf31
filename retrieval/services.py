"""Writes for teams, collections, documents and chunks. Keyword-only, typed, named <entity>_<action>."""

from __future__ import annotations

import hashlib
import io
import logging
import re
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest, Lower
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from . import audit, progress, sealed, selectors, web
from .chunking import ChunkSpec, chunk_blocks
from .embeddings import get_embedder
from .models import (
    INSTRUCTIONS_MAX_CHARS,
    SEARCH_LANGUAGES,
    STARTER_QUESTION_MAX_CHARS,
    STARTER_QUESTIONS_MAX,
    ApiKey,
    Chunk,
    Collection,
    Document,
    Membership,
    SsoIdentity,
    SsoSession,
    Team,
    WebSource,
)
from .parsing import Ocr, ParseError, UnsupportedType, detect_kind, ocr_languages_for, parse_isolated

log = logging.getLogger(__name__)
User = get_user_model()


class UploadTooLarge(ValueError):
    """The upload is over DOCENT_MAX_UPLOAD_BYTES (HTTP 413)."""


__all__ = [
    "UnsupportedType",
    "UploadTooLarge",
    "ParseError",
]


# Teams, members, collections, API keys


def team_get_or_create(*, name: str) -> Team:
    team, _ = Team.objects.get_or_create(name=name, deleted_at=None)
    return team


def membership_set(*, team: Team, user, role: str = Membership.Role.MEMBER) -> Membership:
    membership, _ = Membership.objects.update_or_create(team=team, user=user, defaults={"role": role})
    return membership


def member_left(*, team_id: int, user_id: int) -> None:
    """After the commit, the user's open library pages stop hearing the team (Django admin calls
    this too when it removes a membership)."""
    transaction.on_commit(lambda: progress.publish_member_removed(team_id=team_id, user_id=user_id))


class LastTeamAdmin(Exception):
    """The change would leave a team without an admin, and so without anyone to manage it."""


def membership_change(*, team: Team, user, role: str | None, actor=None) -> Membership | None:
    """Add a user to a team, change their role, or (role None) remove them; LastTeamAdmin when the
    team would be left without an admin. Under the team's row lock, so two admins demoting each
    other at once cannot both succeed. Recorded in the audit log as `actor`'s (None: the system,
    such as sign-in groups)."""
    with transaction.atomic():
        Team.objects.select_for_update().get(id=team.id)
        current = Membership.objects.filter(team=team, user=user).first()
        if current is not None and current.role == Membership.Role.ADMIN and role != Membership.Role.ADMIN:
            others = Membership.objects.filter(team=team, role=Membership.Role.ADMIN).exclude(user=user)
            if not others.exists():
                raise LastTeamAdmin(f"{user.username} is the last admin of team {team.name}")
        was = current.role if current is not None else None
        if role is None:
            if current is not None:
                current.delete()
                member_left(team_id=team.id, user_id=user.id)
                audit.record("member_remove", actor=actor, target=user, team=team, details={"was": was})
            return None
        membership = membership_set(team=team, user=user, role=role)
        if was != role:
            action = "member_add" if was is None else "member_role"
            audit.record(action, actor=actor, target=user, team=team, details={"role": role, "was": was})
        return membership


def user_provision(
    *,
    username: str,
    team_name: str,
    password: str | None = None,
    team_admin: bool = False,
    staff: bool = False,
    superuser: bool = False,
    email: str | None = None,
):
    """Create the user (or update its password, address and flags) and add it to the team, creating
    the team. ValidationError for a malformed address."""
    if email:
        validate_email(email.strip())
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username)
        if email is not None:
            user.email = User.objects.normalize_email(email.strip())
        if password:
            user.set_password(password)
        elif created:
            user.set_unusable_password()
        user.is_staff = user.is_staff or staff or superuser
        user.is_superuser = user.is_superuser or superuser
        user.is_active = True
        user.save()
        team = team_get_or_create(name=team_name)
        role = Membership.Role.ADMIN if team_admin else Membership.Role.MEMBER
        existing = Membership.objects.filter(team=team, user=user).first()
        if existing is None or (team_admin and existing.role != role):
            membership_set(team=team, user=user, role=role)
    return user


class SsoRefused(Exception):
    """A sign-in with the provider that leads to no account; `reason` is what the sign-in page says."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]+")


def sso_sign_in(*, issuer: str, claims: dict):
    """The account a person signing in with the provider gets: the one linked to their subject;
    else, at a first sign-in, the one holding their verified email address (never a superuser's,
    which signs in with its password); else a new one, when DOCENT_OIDC_CREATE_USERS allows. Their
    email and names follow the provider's, and with DOCENT_OIDC_GROUPS_CLAIM set, so do their teams.
    SsoRefused names why no account is given."""
    subject = str(claims.get("sub") or "")
    if not subject:
        raise SsoRefused("failed")
    verified_email = ""
    # DOCENT_OIDC_TRUST_EMAIL: for providers that check addresses but never say so (Microsoft Entra ID).
    verified = claims.get("email_verified", settings.DOCENT_OIDC_TRUST_EMAIL or None) in (True, "true")
    if claims.get("email") and verified:
        verified_email = User.objects.normalize_email(str(claims["email"]).strip())
    groups = _sso_group_names(claims.get(settings.DOCENT_OIDC_GROUPS_CLAIM))
    allowed = {name.strip().lower() for name in settings.DOCENT_OIDC_ALLOWED_GROUPS.split(",")} - {""}
    if allowed and not allowed & groups:
        raise SsoRefused("not-allowed")
    with transaction.atomic():
        identity = (
            SsoIdentity.objects.select_for_update()
            .select_related("user")
            .filter(issuer=issuer, subject=subject)
            .first()
        )
        if identity is None:
            user = _sso_user_by_email(verified_email)
            if user is None:
                if not settings.OIDC_CREATE_USER:
                    raise SsoRefused("no-account")
                user = User.objects.create_user(_sso_username(claims, verified_email), email=verified_email)
            identity = SsoIdentity(user=user, issuer=issuer, subject=subject)
        user = identity.user
        if not user.is_active:
            raise SsoRefused("inactive")
        _sso_profile_update(user, claims, verified_email)
        identity.last_sign_in_at = timezone.now()
        identity.save()
        # A claim left out (not sent empty) changes nothing: Entra ID leaves it out past 200 groups.
        if settings.DOCENT_OIDC_GROUPS_CLAIM in claims:
            _sso_teams_sync(user, groups)
    return user


def _session_store():
    return import_module(settings.SESSION_ENGINE).SessionStore


def sso_session_record(*, issuer: str, subject: str, sid: str, session_key: str) -> None:
    """Remember a session begun with the provider (for its back-channel logout), forgetting that
    person's sessions which have ended meanwhile."""
    identity = SsoIdentity.objects.filter(issuer=issuer, subject=subject).first()
    if identity is None:
        return
    store = _session_store()
    ended = [row.id for row in identity.sessions.all() if not store().exists(row.session_key)]
    SsoSession.objects.filter(id__in=ended).delete()
    SsoSession.objects.create(identity=identity, sid=sid, session_key=session_key)


def sso_sessions_end(*, issuer: str, subject: str | None, sid: str | None) -> int:
    """End the Docent sessions a back-channel logout names: the one begun in the provider's session
    `sid`, or every one of `subject`'s (both given: that session, if it is theirs). How many ended."""
    rows = SsoSession.objects.filter(identity__issuer=issuer)
    if sid:
        rows = rows.filter(sid=sid)
    if subject:
        rows = rows.filter(identity__subject=subject)
    keys = list(rows.values_list("session_key", flat=True))
    store = _session_store()
    for key in keys:
        store(key).delete()
    rows.delete()
    return len(keys)


def _sso_group_names(groups) -> set[str]:
    """A groups claim's names, lower-cased; a path such as "/acme/research" also by its last part."""
    if isinstance(groups, str):
        groups = [groups]
    names: set[str] = set()
    for group in groups if isinstance(groups, list) else []:
        text = str(group).strip().strip("/")
        names.update({text.lower(), text.rpartition("/")[2].lower()} - {""})
    return names


def _sso_user_by_email(email: str):
    if not email:
        return None
    users = list(User.objects.filter(email__iexact=email)[:2])
    if len(users) > 1:
        raise SsoRefused("ambiguous")
    if users and users[0].is_superuser:
        raise SsoRefused("password-account")
    return users[0] if users else None


def _sso_username(claims: dict, email: str) -> str:
    wanted = claims.get("preferred_username") or email.partition("@")[0] or claims.get("name") or "user"
    base = _USERNAME_UNSAFE.sub("-", str(wanted)).strip("-")[:140] or "user"
    taken = set(
        User.objects.filter(username__iregex=rf"^{re.escape(base)}(-[0-9]+)?$").values_list(
            Lower("username"), flat=True
        )
    )
    if base.lower() not in taken:
        return base
    return next(f"{base}-{n}" for n in range(2, len(taken) + 3) if f"{base}-{n}".lower() not in taken)


def _sso_profile_update(user, claims: dict, email: str) -> None:
    wanted = {"first_name": claims.get("given_name"), "last_name": claims.get("family_name"), "email": email}
    changed = []
    for name, value in wanted.items():
        value = str(value or "")[: User._meta.get_field(name).max_length]
        if value and value != getattr(user, name):
            setattr(user, name, value)
            changed.append(name)
    if changed:
        user.save(update_fields=changed)


def _sso_teams_sync(user, groups: set[str]) -> None:
    """Teams named like one of the person's groups (case aside) get them as a member, or as an
    admin where a group is named like the team plus DOCENT_OIDC_TEAM_ADMIN_SUFFIX; teams they were
    given this way lose them when no group is left, but never their last admin. Roles follow the
    groups only with the suffix set (without it, a team admin's promotion stands). Teams are never
    created, and memberships made by hand are left alone."""
    suffix = settings.DOCENT_OIDC_TEAM_ADMIN_SUFFIX.lower()
    admin_of = {name.removesuffix(suffix) for name in groups if suffix and name.endswith(suffix)}
    live = Team.objects.annotate(lower=Lower("name")).filter(
        deleted_at__isnull=True, lower__in=groups | admin_of
    )
    wanted = {
        team.id: (team, Membership.Role.ADMIN if team.lower in admin_of else Membership.Role.MEMBER)
        for team in live
    }
    held = {m.team_id: m for m in Membership.objects.filter(user=user).select_related("team")}
    for team_id, (team, role) in wanted.items():
        current = held.get(team_id)
        if current is not None and not current.from_sso:
            continue
        if current is None:
            Membership.objects.create(team=team, user=user, role=role, from_sso=True)
            audit.record(
                "member_add",
                target=user,
                team=team,
                details={"role": role, "was": None, "by": "sign-in groups"},
            )
        elif suffix and current.role != role:
            _sso_membership_change(user, team, role)
    for team_id, membership in held.items():
        if membership.from_sso and team_id not in wanted:
            _sso_membership_change(user, membership.team, None)


def _sso_membership_change(user, team: Team, role: str | None) -> None:
    try:
        membership_change(team=team, user=user, role=role)
    except LastTeamAdmin:
        log.warning("%s stays admin of team %s without the group for it: they are its last admin", user, team)


def password_reset_request(*, email: str, base_url: str) -> None:
    """Queues a reset link to each active account with this address, and nothing otherwise: a
    worker makes and sends the link, so the page answers alike whether the address has an account
    (an email sent in the request would tell by its time) and a slow mail server holds up no one."""
    _password_reset_queue(selectors.users_reachable_by_email(email=email), base_url)


def password_reset_queue(*, user_ids: Sequence[int], base_url: str) -> list:
    """After the commit, a worker emails each of these users it can reach (active, with an address)
    a link to set a new password; those users."""
    return _password_reset_queue(selectors.users_reachable_by_email(ids=user_ids), base_url)


def _password_reset_queue(users, base_url: str) -> list:
    from .tasks import password_reset_send_later

    users = list(users)
    for user in users:
        transaction.on_commit(lambda uid=user.id: password_reset_send_later.delay(uid, base_url), robust=True)
    return users


def password_reset_send(*, user_id: int, base_url: str) -> bool:
    """Emails the user a one-time link to set a new password (valid `PASSWORD_RESET_TIMEOUT`).
    False when the account is gone, inactive or without an address by now."""
    user = selectors.users_reachable_by_email(ids=[user_id]).first()
    if user is None:
        return False
    path = reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    context = {
        "user": user,
        "link": base_url.rstrip("/") + path,
        "site": base_url.rstrip("/"),
        "valid_days": max(1, round(settings.PASSWORD_RESET_TIMEOUT / 86400)),
    }
    subject = " ".join(render_to_string("registration/password_reset_subject.txt", context).split())
    body = render_to_string("registration/password_reset_email.txt", context)
    send_mail(subject, body, None, [user.email])
    return True


def collection_create(
    *, team: Team, name: str, user=None, description: str = "", language: str = "english"
) -> Collection:
    """A new collection; ValueError for a language PostgreSQL has no text search configuration of."""
    collection_language_check(language)
    with transaction.atomic():  # a duplicate name fails this savepoint, not the caller's transaction
        collection = Collection.objects.create(
            team=team,
            name=name.strip(),
            created_by=user,
            description=description,
            language=language,
            indexed_language=language,
        )
        audit.record("collection_create", actor=user, target=collection, team=team)
    return collection


def collection_language_check(language: str) -> None:
    """ValueError unless keyword search can use the language: one of PostgreSQL's configurations,
    which this database server has."""
    if language not in SEARCH_LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(SEARCH_LANGUAGES)}")
    if not _server_has_language(language):
        # PostgreSQL 16 has them all; an older server (DATABASE_URL) lacks the six it added.
        raise ValueError(f"this PostgreSQL server has no text search configuration for {language}")


def _server_has_language(language: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_ts_config WHERE cfgname = %s", [language])
        return cursor.fetchone() is not None


def collection_questions_clean(questions) -> list[str]:
    """A collection's suggested questions: each once, on one line, blank ones dropped; ValueError for
    anything but a list of text, or past the limits."""
    if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
        raise ValueError("suggested questions are a list of text")
    cleaned = list(dict.fromkeys(" ".join(q.split()) for q in questions if q.strip()))
    if len(cleaned) > STARTER_QUESTIONS_MAX:
        raise ValueError(f"a collection suggests at most {STARTER_QUESTIONS_MAX} questions")
    if any(len(q) > STARTER_QUESTION_MAX_CHARS for q in cleaned):
        raise ValueError(f"a suggested question is limited to {STARTER_QUESTION_MAX_CHARS} characters")
    return cleaned


def collection_update(
    *,
    collection: Collection,
    name: str | None = None,
    description: str | None = None,
    instructions: str | None = None,
    language: str | None = None,
    starter_questions: list[str] | None = None,
    actor=None,
) -> None:
    """Rename or describe a collection, set its instructions to the model, the questions it suggests
    or its documents' language (its keyword index is then built again, by a task); IntegrityError
    when its team already has one of that name, ValueError for instructions or questions over their
    limits or an unknown language."""
    before = {
        f: getattr(collection, f)
        for f in ("name", "description", "instructions", "language", "starter_questions")
    }
    if language is not None:
        collection_language_check(language)
        collection.language = language
    if name is not None:
        collection.name = name.strip()
    if description is not None:
        collection.description = description
    if instructions is not None:
        instructions = instructions.strip()
        if len(instructions) > INSTRUCTIONS_MAX_CHARS:
            raise ValueError(f"instructions are limited to {INSTRUCTIONS_MAX_CHARS} characters")
        collection.instructions = instructions
    if starter_questions is not None:
        collection.starter_questions = collection_questions_clean(starter_questions)
    with transaction.atomic():
        collection.save(
            update_fields=["name", "description", "instructions", "language", "starter_questions"]
        )
        changed = sorted(f for f, value in before.items() if getattr(collection, f) != value)
        if changed:
            details = {"changed": changed}
            if "name" in changed:
                details["was"] = before["name"]
            audit.record(
                "collection_update", actor=actor, target=collection, team=collection.team_id, details=details
            )
        if collection.language != collection.indexed_language:
            collection_rekey_queue(collection_id=collection.id)


def collection_share(
    *,
    collection: Collection,
    teams: Sequence[int | str] | None = None,
    everyone: bool | None = None,
    actor=None,
) -> None:
    """Let exactly these teams (ids or names) read the collection beside its own, and/or every team
    (teams made later too); None leaves that part as it is. ValueError naming a team that does not
    exist. Search reads the shares in its own statement: a team left out stops finding the
    collection's passages at once."""
    if teams is None and everyone is None:
        return
    before = selectors.collection_readers(collection_ids=[collection.id])[collection.id]
    if teams is not None:
        wanted = []
        for key in dict.fromkeys(teams):
            team = selectors.team_find(key=key, among=selectors.teams_all())
            if team is None:
                raise ValueError(f"no team {key!r}")
            if team.id != collection.team_id:  # its own team reads it anyway
                wanted.append(team)
        collection.shared_with.set(wanted)
    if everyone is not None:
        collection.shared_with_all = everyone
        collection.save(update_fields=["shared_with_all"])
    after = collection_readers_changed(collection=collection, before=before)
    if after != before:
        names = dict(Team.objects.filter(id__in=before[0] | after[0]).values_list("id", "name"))
        audit.record(
            "collection_share",
            actor=actor,
            target=collection,
            team=collection.team_id,
            details={
                "teams": sorted(names[t] for t in after[0] - {collection.team_id} if t in names),
                "was": sorted(names[t] for t in before[0] - {collection.team_id} if t in names),
                "everyone": after[1],
                "everyone_was": before[1],
            },
        )


def collection_readers_changed(
    *, collection: Collection, before: tuple[set[int], bool]
) -> tuple[set[int], bool]:
    """After the commit, the library pages of teams that gained or lost the collection hear of it
    (they add or drop its section without a reload). `before`: its readers as
    `selectors.collection_readers` gave them before the change."""
    after = selectors.collection_readers(collection_ids=[collection.id])[collection.id]
    log.info(
        "collection %s shared with teams %s, every team: %s",
        collection.id,
        sorted(after[0] - {collection.team_id}),
        after[1],
    )
    if after != before:
        transaction.on_commit(
            lambda: progress.publish_readers_changed(collection_id=collection.id, before=before, after=after),
            robust=True,
        )
    return after


def collection_rekey_queue(*, collection_id: int) -> None:
    """After the commit, a task builds the collection's keyword index in its new language."""
    from .tasks import rekey_collection

    transaction.on_commit(lambda: rekey_collection.delay(collection_id), robust=True)


# Held shared by every write of a collection's chunks, exclusive by a rebuild of its keyword index
# in another language (`_write_chunks`, `collection_rekey`).
_KEYING_LOCK = "hashtextextended('docent-keying', %s)"

# The keyword index derived from the chunks' keyword vectors, for the chunks that `{where}` keeps:
# postings, document frequencies, collection statistics (a language change rebuilds one
# collection's, `manage.py reindex --keywords` the whole table's).
_POSTINGS_SQL = """
INSERT INTO retrieval_posting (term_hash, collection_id, chunk_id, tf, dl)
SELECT hashtextextended(u.lexeme, 0), ch.collection_id, ch.id, array_length(u.positions, 1), ch.term_count
FROM retrieval_chunk ch, unnest(ch.search_vector) u WHERE {where}"""
_TERMS_SQL = """
INSERT INTO retrieval_term (term, collection_id, df)
SELECT u.lexeme, ch.collection_id, count(*) FROM retrieval_chunk ch, unnest(ch.search_vector) u
WHERE {where} GROUP BY 1, 2"""
_STATISTICS_SQL = """
UPDATE retrieval_collection c
SET indexed_chunks = (SELECT count(*) FROM retrieval_chunk ch WHERE ch.collection_id = c.id),
    indexed_terms = (SELECT coalesce(sum(ch.term_count), 0) FROM retrieval_chunk ch WHERE ch.collection_id = c.id)
WHERE {where}"""
_ONE = "ch.collection_id = %(c)s"
_REKEY_SQL = [
    "DELETE FROM retrieval_posting WHERE collection_id = %(c)s",
    "DELETE FROM retrieval_term WHERE collection_id = %(c)s",
    """UPDATE retrieval_chunk ch
       SET search_vector = v.tsv,
           term_count = (SELECT coalesce(sum(array_length(u.positions, 1)), 0) FROM unnest(v.tsv) u)
       FROM (SELECT id, docent_keywords(heading_path || ' ' || text, %(language)s::regconfig) AS tsv
             FROM retrieval_chunk WHERE collection_id = %(c)s) v
       WHERE ch.id = v.id""",
    _POSTINGS_SQL.format(where=_ONE),
    _TERMS_SQL.format(where=_ONE),
    _STATISTICS_SQL.format(where="c.id = %(c)s"),
    "UPDATE retrieval_collection SET indexed_language = %(language)s WHERE id = %(c)s",
]


def collection_rekey(*, collection_id: int) -> bool:
    """Build a collection's keyword index (keyword vectors, postings, term statistics) again in its
    language, when that changed; False when there was nothing to do. One transaction: searches see
    the old index, in the old language, until the new one replaces it whole."""
    with transaction.atomic(), connection.cursor() as cursor:
        # A rebuild of this collection already running (the sweep queues it again every minute
        # until it is done): this one has nothing to do, and must not hold a worker waiting.
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(hashtextextended('docent-rekey', %s))", [collection_id]
        )
        if not cursor.fetchone()[0]:
            return False
        # Chunks written meanwhile would be keyed in the old language: this waits for the writes
        # into this collection under way and holds back new ones until it commits (each writer
        # holds the same lock shared, `_write_chunks`); other collections' writes go on (the
        # 11,729 chunks of SciFact took 13 - 15 s).
        cursor.execute(f"SELECT pg_advisory_xact_lock({_KEYING_LOCK})", [collection_id])
        # Not FOR UPDATE: new documents' foreign-key checks (key share) need not wait.
        collection = Collection.objects.select_for_update(no_key=True).filter(id=collection_id).first()
        if collection is None or collection.language == collection.indexed_language:
            return False
        for statement in _REKEY_SQL:
            cursor.execute(statement, {"c": collection_id, "language": collection.language})
    log.info("collection %s: keyword index rebuilt in %s", collection_id, collection.language)
    return True


def collections_rekey_stuck() -> list[int]:
    """Queue the rebuild again for collections whose keyword index is still in another language than
    theirs (a lost task, a killed worker)."""
    from .tasks import rekey_collection

    ids = list(
        Collection.objects.filter(deleted_at__isnull=True)
        .exclude(language=F("indexed_language"))
        .values_list("id", flat=True)
    )
    for collection_id in ids:
        rekey_collection.delay(collection_id)
    return ids


def collection_delete(*, collection: Collection, actor=None) -> None:
    """Delete a collection: at once it is gone from every list, route and search (each reads only
    collections without `deleted_at`); its documents, passages and files are purged by a task, in
    batches, since a large collection takes minutes (11,729 chunks took 2.4 s in one statement).
    Its name is free again at once."""
    from .tasks import purge_collection

    if _mark_deleted(collection):
        log.info("collection %s deleted; purging its documents", collection.id)
        audit.record("collection_delete", actor=actor, target=collection, team=collection.team_id)
        transaction.on_commit(lambda: progress.publish_collection_deleted(collection_id=collection.id))
    transaction.on_commit(lambda: purge_collection.delay(collection.id), robust=True)


def _mark_deleted(collection: Collection) -> bool:
    """Set `deleted_at` (once: False when it was set already)."""
    return bool(
        Collection.objects.filter(id=collection.id, deleted_at__isnull=True).update(deleted_at=timezone.now())
    )


PURGE_BATCH_CHUNKS = 20_000


def collection_purge(*, collection_id: int) -> int:
    """Delete a deleted collection's documents with their passages, postings and files, one batch
    per transaction, then the collection itself. Returns the documents deleted.

    Re-runnable and safe to run twice at once: each batch commits whole and skips documents another
    purge (or an ingestion) holds, so a killed purge goes on where it stopped, and the collection
    row goes only once none of its documents is left.
    """
    removed = 0
    while True:
        with transaction.atomic():
            rows = list(
                Document.objects.filter(collection_id=collection_id, collection__deleted_at__isnull=False)
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("id")
                .values_list("id", "chunk_count", "file")[:500]
            )
            batch, chunks = [], 0
            for document_id, chunk_count, name in rows:
                if batch and chunks + chunk_count > PURGE_BATCH_CHUNKS:
                    break
                batch.append((document_id, name))
                chunks += chunk_count
            if not batch:
                break
            # Not announced one by one: the library pages were told the whole collection went.
            _rows_remove([document_id for document_id, _ in batch], [name for _, name in batch])
        removed += len(batch)
    with transaction.atomic():
        collection = (
            Collection.objects.select_for_update(skip_locked=True)
            .filter(id=collection_id, deleted_at__isnull=False)
            .first()
        )
        # Another purge still at work, or an ingestion holding a document: that one, or the sweep's
        # next purge, finishes the job.
        if collection is None or collection.documents.exists():
            return removed
        collection.delete()  # no chunk outlives its document (foreign key)
    log.info("collection %s purged: %d documents", collection_id, removed)
    _team_remove_if_purged(team_id=collection.team_id)
    return removed


def collections_purge_stuck(*, stuck_after_s: int) -> list[int]:
    """Queue the purge again for collections deleted long ago and still there (a lost task, a
    killed worker), and remove deleted teams whose collections are all gone."""
    from .tasks import purge_collection

    cutoff = timezone.now() - timezone.timedelta(seconds=stuck_after_s)
    ids = list(Collection.objects.filter(deleted_at__lt=cutoff).values_list("id", flat=True))
    for collection_id in ids:
        purge_collection.delay(collection_id)
    for team_id in Team.objects.filter(deleted_at__lt=cutoff).values_list("id", flat=True):
        _team_remove_if_purged(team_id=team_id)
    return ids


def team_delete(*, team: Team, actor=None) -> None:
    """Delete a team: at once its members lose it and its collections are deleted (gone from every
    list, route and search); their purges run as tasks, and the last to finish removes the team's
    row. Its name is free again at once. A team of thousands of documents held the admin's request
    for as long as their passages took to delete."""
    with transaction.atomic():
        if Team.objects.filter(id=team.id, deleted_at__isnull=True).update(deleted_at=timezone.now()):
            log.info("team %s deleted; purging its collections", team.id)
            audit.record("team_delete", actor=actor, target=team, team=team)
        Membership.objects.filter(team_id=team.id).delete()
        collections = list(Collection.objects.filter(team_id=team.id))
        for collection in collections:
            collection_delete(collection=collection, actor=actor)
    if not collections:
        _team_remove_if_purged(team_id=team.id)


def _team_remove_if_purged(*, team_id: int) -> None:
    """Remove a deleted team's row once none of its collections is left. Each purge asks after its
    own commit, under the team's lock, so the last of several running at once sees all the others'."""
    with transaction.atomic():
        team = Team.objects.select_for_update().filter(id=team_id, deleted_at__isnull=False).first()
        if team is not None and not team.collections.exists():
            team.delete()
            log.info("team %s purged", team_id)


def api_key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_key_create(*, user, name: str = "default") -> tuple[ApiKey, str]:
    """A new key; the raw value is returned once and only its hash is stored."""
    raw = "dk_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        key = ApiKey.objects.create(user=user, name=name, prefix=raw[:10], hashed_key=api_key_hash(raw))
        audit.record("api_key_create", actor=user, target=key, name=f"{name} ({key.prefix}…)")
    return key, raw


def api_key_revoke(*, user, key_id: int) -> bool:
    """Revoke one of the user's keys (at once: every request looks its key up). False when the key
    is not theirs; revoking a revoked key changes nothing."""
    mine = ApiKey.objects.filter(id=key_id, user=user)
    with transaction.atomic():
        if mine.filter(revoked_at__isnull=True).update(revoked_at=timezone.now()):
            key = mine.get()
            audit.record("api_key_revoke", actor=user, target=key, name=f"{key.name} ({key.prefix}…)")
    return mine.exists()


# Documents


def _store_upload(source: BinaryIO, limit: int) -> tuple[Path, str, int]:
    """Stream an upload to its final, generated path; hash it on the way; stop past the size limit."""
    relative = f"documents/{uuid.uuid4().hex}"
    path = Path(settings.MEDIA_ROOT) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("wb") as out:
            while chunk := source.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(f"the file is larger than the {limit // (1024 * 1024)} MB limit")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, digest.hexdigest(), size


def upload_name(filename: str | None) -> str:
    """The name a document keeps (metadata only: files are stored under generated names). A file
    from an uploaded folder keeps its path inside it ("wiki/howto/README.md"), so that two READMEs
    of one folder are two documents, and a new version of the folder replaces each by its own."""
    # Control characters and unpaired surrogates dropped, as Django drops them from a multipart file
    # name (a folder's `path` field comes as text): PostgreSQL keeps no NUL.
    name = "".join(c if c.isprintable() else " " if c.isspace() else "" for c in filename or "")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts)[-300:].lstrip("/") or "upload"


def document_create(
    *,
    collection: Collection,
    file: BinaryIO,
    filename: str,
    user=None,
    title: str | None = None,
    enqueue: bool = True,
    replace: bool = False,
    source: WebSource | None = None,
    source_url: str = "",
    type_name: str | None = None,
    actor=None,
) -> tuple[Document, bool]:
    """Store an upload and queue its ingestion after commit.

    Returns (document, created). The same bytes uploaded again to the same collection return the
    existing document instead of a copy. With `replace`, the upload is a new version: once it is
    ready, the collection's older documents of the same file name are deleted (`document_versions_older`).
    `type_name`: the name whose extension the content is checked against, when the document's own
    name says nothing of its type (a web page's address: "/guide.php" is HTML).
    `actor`: the person uploading, through the browser or the API; their upload goes in the audit log
    (a script's, or a web source's pages, do not: the source is there).
    """
    limit = settings.DOCENT_MAX_UPLOAD_BYTES
    declared = getattr(file, "size", None)
    if declared is not None and declared > limit:
        raise UploadTooLarge(f"the file is larger than the {limit // (1024 * 1024)} MB limit")
    filename = upload_name(filename)
    path, digest, size = _store_upload(file, limit)
    try:
        kind = detect_kind(path, filename if type_name is None else type_name)
        existing = (
            Document.objects.filter(collection=collection, content_hash=digest)
            .exclude(status=Document.Status.FAILED)
            .first()
        )
        if existing is not None:
            path.unlink(missing_ok=True)
            return existing, False
        with transaction.atomic():
            document = Document.objects.create(
                collection=collection,
                title=(title or Path(filename).stem or filename)[:300],  # the last part's stem
                original_name=filename,
                file=str(path.relative_to(settings.MEDIA_ROOT)),
                content_hash=digest,
                kind=kind,
                size=size,
                uploaded_by=user,
                heartbeat_at=timezone.now(),
                replace_older=replace,
                source=source,
                source_url=source_url,
            )
            if actor is not None:
                _document_recorded("document_upload", document, actor, size=size, kind=kind, replace=replace)
            if enqueue:
                # Its readers' open library pages show it from now (the uploader's has its row);
                # told before the task is sent, so "queued" never arrives after "processing".
                transaction.on_commit(lambda: progress.publish(document))
                documents_enqueue(document_ids=[document.id])
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return document, True


def documents_enqueue(*, document_ids: Sequence[int], batch_size: int = 1) -> None:
    """Queue ingestion once the current transaction commits (a task must never see uncommitted rows).

    Robust: when the broker cannot take the task, the documents stay queued (the upload itself
    succeeded) and the stuck-document sweep queues them again once the broker is back.
    """
    from .tasks import ingest_documents

    ids = list(document_ids)
    for i in range(0, len(ids), batch_size):
        batch = ids[i : i + batch_size]
        transaction.on_commit(lambda batch=batch: ingest_documents.delay(batch), robust=True)


def _recorded_in(collection: Collection, action: str, target, actor, *, name: str | None = None, **details):
    """An audit event about something of a collection (a document, a web source): in the collection's
    team, the collection's name among the details."""
    audit.record(
        action,
        actor=actor,
        target=target,
        name=name,
        team=collection.team_id,
        details={"collection": collection.name, **details},
    )


def _document_recorded(action: str, document: Document, actor, *, name: str | None = None, **details) -> None:
    """`_recorded_in` for a document, under its address or file name unless `name` is given."""
    name = name if name is not None else document.source_url or document.original_name
    _recorded_in(document.collection, action, document, actor, name=name, **details)


def document_requeue(*, document: Document, reset_attempts: bool = False, actor=None) -> None:
    """Queue the document again. `actor`: the person who asked (recorded; the sweep's are not)."""
    with transaction.atomic():
        _requeue([document.id], reset_attempts=reset_attempts)
        if actor is not None:
            _document_recorded("document_retry", document, actor, status=document.status)


def _requeue(ids: Sequence[int], *, reset_attempts: bool, batch_size: int = 1) -> None:
    """Back to queued, with the progress, error and (on request) attempts of the last run cleared."""
    fields = {"status": Document.Status.QUEUED, "progress": 0.0, "error": "", "heartbeat_at": timezone.now()}
    if reset_attempts:
        fields["attempts"] = 0
    Document.objects.filter(id__in=ids).update(**fields)
    documents_enqueue(document_ids=ids, batch_size=batch_size)


def documents_requeue_alone(*, document_ids: Sequence[int]) -> list[int]:
    """Queue a batch that ran out of time again as one task per document; those it failed (a file
    that cannot be parsed) stay failed. Returns the ids queued."""
    ids = list(
        Document.objects.filter(id__in=document_ids)
        .exclude(status__in=[Document.Status.READY, Document.Status.FAILED])
        .values_list("id", flat=True)
    )
    _requeue(ids, reset_attempts=False, batch_size=1)
    return ids


def collection_retry_failed(*, collection: Collection, actor=None) -> int:
    """Queue every failed document of the collection again, with fresh attempts (after an outage of
    the embedding provider outlasted the retries, say); the number queued. A file that cannot be
    parsed fails again, with its reason."""
    with transaction.atomic():
        ids = list(
            Document.objects.select_for_update(skip_locked=True)
            .filter(collection=collection, status=Document.Status.FAILED)
            .values_list("id", flat=True)
        )
        _requeue(ids, reset_attempts=True, batch_size=8)
        if ids:
            audit.record(
                "collection_retry",
                actor=actor,
                target=collection,
                team=collection.team_id,
                details={"queued": len(ids)},
            )
    return len(ids)


def document_delete(*, document: Document, actor=None) -> None:
    """Delete the document, its chunks (so they are never retrieved again) and its stored file."""
    documents_delete(documents=[document], actor=actor)


def documents_delete(*, documents: Sequence[Document], actor=None) -> None:
    """`document_delete` for several documents at once, in one transaction: all, or none. The
    documents need their collection loaded."""
    with transaction.atomic():
        _documents_remove(list(documents))
        for document in documents:
            _document_recorded("document_delete", document, actor)


TITLE_MAX = Document._meta.get_field("title").max_length


def document_rename(*, document: Document, title: str, actor=None) -> Document:
    """Give the document another title (what the library, search and citations call it; its file
    keeps its original name). Runs of white space, line breaks too, become one space. The open
    library pages are told. ValueError for a blank title or one too long."""
    title = " ".join(title.split())
    if not title:
        raise ValueError("a document needs a title")
    if len(title) > TITLE_MAX:
        raise ValueError(f"a title is at most {TITLE_MAX} characters")
    if title == document.title:
        return document
    before = document.title
    with transaction.atomic():
        # The title alone: a worker ingesting the document writes its status fields, never this one.
        Document.objects.filter(id=document.id).update(title=title, updated_at=timezone.now())
        document.title = title
        _document_recorded("document_rename", document, actor, name=title, **{"from": before})
        event = {"id": document.id, "collection_id": document.collection_id, "title": title}
        transaction.on_commit(lambda: progress.publish_renamed(**event))
    return document


def folder_prune(*, collection: Collection, folder: str, present: Iterable[str]) -> list[str]:
    """Delete the collection's documents of a folder (named `folder/...`, as a folder's files are)
    whose file is no longer in it, for a folder kept in step by ingesting it again; their names."""
    keep = set(present)
    gone = [
        d
        for d in Document.objects.filter(collection=collection, original_name__startswith=f"{folder}/")
        if d.original_name not in keep
    ]
    with transaction.atomic():
        _documents_remove(gone)
    return sorted(d.original_name for d in gone)


def _rows_remove(ids: Sequence[int], file_names: Iterable[str]) -> None:
    """Delete documents and their chunks in the current transaction; their files once it commits."""
    _chunks_remove(ids)
    Document.objects.filter(id__in=ids).delete()
    paths = [Path(settings.MEDIA_ROOT) / name for name in file_names if name]
    transaction.on_commit(lambda: [path.unlink(missing_ok=True) for path in paths])


def _documents_remove(documents: Sequence[Document]) -> None:
    """`_rows_remove`, and the teams' library pages told once it commits. The documents need their
    collection loaded."""
    _rows_remove([d.id for d in documents], [d.file.name for d in documents])
    for d in documents:
        gone = {"document_id": d.id, "collection_id": d.collection_id}
        transaction.on_commit(lambda gone=gone: progress.publish_deleted(**gone))


def _older_versions_remove(documents: Sequence[Document]) -> set[int]:
    """Delete the older versions of these new, now ready, documents, in the transaction that marks
    them ready, so no search sees both versions, or neither. Returns the deleted ids.

    Locked newest first, after the new version's own (higher) row: two versions of one file finishing
    together then queue for the same rows in the same order instead of deadlocking.
    """
    found: dict[int, Document] = {}
    for document in documents:
        for d in (
            selectors.document_versions_older(document=document)
            .select_for_update(of=("self",))
            .select_related("collection")
            .order_by("-id")
        ):
            found[d.id] = d
    if found:
        _documents_remove(list(found.values()))
    return set(found)


def _set_status(document: Document, **fields) -> None:
    for name, value in fields.items():
        setattr(document, name, value)
    Document.objects.filter(id=document.id).update(**fields, updated_at=timezone.now())
    progress.publish(document)


def document_fail(*, document: Document, reason: str) -> None:
    log.info("document %s failed: %s", document.id, reason)
    _set_status(
        document,
        status=Document.Status.FAILED,
        error=reason[:2000],
        finished_at=timezone.now(),
    )


@dataclass
class IngestStats:
    documents: int = 0
    ready: int = 0
    failed: int = 0
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    seconds: dict[str, float] = field(
        default_factory=lambda: {"parse": 0.0, "chunk": 0.0, "embed": 0.0, "insert": 0.0}
    )


class _Timer:
    def __init__(self, stats: IngestStats, name: str):
        self.stats, self.name = stats, name

    def __enter__(self):
        self.started = time.perf_counter()

    def __exit__(self, *exc):
        self.stats.seconds[self.name] += time.perf_counter() - self.started


def documents_ingest(
    *, document_ids: Iterable[int], force: bool = False, reuse_vectors: bool = True
) -> IngestStats:
    """Parse, chunk, embed and index documents; idempotent, so a crashed run can simply run again.

    Several documents embed together, so small files still fill the embedder's batches. Each
    document fails alone: a hostile file marks itself failed and the rest carry on. The chunks of
    a document are replaced in one transaction, so a rerun never leaves duplicates.
    """
    embedder = get_embedder()
    stats = IngestStats()
    documents = list(
        Document.objects.filter(
            id__in=list(document_ids), collection__deleted_at__isnull=True
        ).select_related("collection")
    )  # a deleted collection's documents are being purged: no work for them
    todo = [
        d
        for d in documents
        if force
        or not (
            (d.status == Document.Status.READY and d.embedding_model == embedder.model_name)
            or d.status == Document.Status.FAILED
        )
    ]
    stats.documents = len(todo)
    if not todo:
        return stats
    # Uploads get a live bar per file; bulk loads skip per-file writes that would dominate their cost.
    live = len(todo) <= LIVE_PROGRESS_MAX
    now = timezone.now()
    Document.objects.filter(id__in=[d.id for d in todo]).update(
        status=Document.Status.PROCESSING,
        attempts=F("attempts") + 1,
        started_at=now,
        heartbeat_at=now,
        error="",
        progress=0.05,
    )
    prepared: list[tuple[Document, list[ChunkSpec]]] = []
    max_tokens = min(settings.DOCENT_CHUNK_TOKENS, embedder.max_input_tokens - 50)
    heartbeat = _Heartbeat([d.id for d in todo])
    for document in todo:
        document.status, document.progress, document.error = Document.Status.PROCESSING, 0.05, ""
        if live:
            progress.publish(document)
        try:
            with _Timer(stats, "parse"):
                blocks = parse_isolated(
                    Path(settings.MEDIA_ROOT) / document.file.name,
                    document.kind,
                    max_chars=settings.DOCENT_MAX_DOCUMENT_CHARS,
                    timeout_s=settings.DOCENT_PARSE_TIMEOUT_S,
                    memory_mb=settings.DOCENT_PARSE_MEMORY_MB,
                    ocr=_ocr(document.collection.language),
                    progress=_ocr_progress(document, heartbeat, live=live),
                )
            heartbeat.beat()
            with _Timer(stats, "chunk"):
                specs = chunk_blocks(
                    blocks,
                    offsets_of=embedder.offsets,
                    max_tokens=max_tokens,
                    overlap_tokens=settings.DOCENT_CHUNK_OVERLAP_TOKENS,
                    heading_tokens=48,
                )
            if not specs:
                raise ParseError("the document contains no text")
        except (ParseError, UnsupportedType, FileNotFoundError) as exc:
            reason = str(exc) if not isinstance(exc, FileNotFoundError) else "the uploaded file is missing"
            document_fail(document=document, reason=reason)
            stats.failed += 1
            continue
        prepared.append((document, specs))
        if live:
            _set_status(
                document,
                progress=max(document.progress, 0.15),
                heartbeat_at=timezone.now(),
            )

    vectors = _embed_missing(embedder, prepared, stats, live=live, reuse=reuse_vectors)
    with _Timer(stats, "insert"):
        written = _write_chunks(prepared, vectors, embedder.model_name)
    for document, specs in prepared:
        if document.id not in written:
            continue  # deleted while it was being processed
        stats.ready += 1
        stats.chunks += len(specs)
        document.status, document.progress, document.chunk_count = Document.Status.READY, 1.0, len(specs)
        document.error = ""
    # One lookup of the readers and one event loop for the batch, live or not.
    progress.publish_bulk([d for d, _ in prepared if d.id in written])
    return stats


LIVE_PROGRESS_MAX = 8
# Reading a scan by OCR takes longer than embedding its text: its pages fill the bar up to here.
OCR_PROGRESS_END = 0.6


def _ocr(language: str = "english") -> Ocr | None:
    """How to read scans of a collection in `language`."""
    if not settings.DOCENT_OCR:
        return None
    return Ocr(
        languages=ocr_languages_for(language, settings.DOCENT_OCR_LANGUAGES),
        max_pages=settings.DOCENT_OCR_MAX_PAGES,
        timeout_s=settings.DOCENT_PARSE_TIMEOUT_S,
    )


class _Heartbeat:
    """Keeps a batch's documents alive to the stuck sweep while others of it are parsed: a batch of
    long scans read by OCR can take longer than `DOCENT_STUCK_AFTER_S`, and the documents waiting
    their turn must not be taken for a dead worker's and queued twice."""

    EVERY_S = 30.0

    def __init__(self, ids: list[int]):
        self.ids, self.last = ids, time.monotonic()

    def beat(self) -> None:
        if time.monotonic() - self.last < self.EVERY_S:
            return
        Document.objects.filter(id__in=self.ids, status=Document.Status.PROCESSING).update(
            heartbeat_at=timezone.now()
        )
        self.last = time.monotonic()


def _ocr_progress(document: Document, heartbeat: _Heartbeat, *, live: bool):
    """Each page OCR reads moves the document's bar and heartbeat (a long scan is not a dead worker),
    and its batch's."""

    def tell(done: int, of: int) -> None:
        document.progress = 0.05 + (OCR_PROGRESS_END - 0.05) * done / max(of, 1)
        document.heartbeat_at = timezone.now()
        Document.objects.filter(id=document.id).update(
            progress=document.progress, heartbeat_at=document.heartbeat_at
        )
        heartbeat.beat()
        if live:
            progress.publish(document)

    return tell


def _embed_missing(embedder, prepared, stats: IngestStats, *, live: bool, reuse: bool) -> dict[str, object]:
    """Vectors for every chunk hash, reusing those this model already made for identical chunks."""
    wanted: dict[str, str] = {}
    for _, specs in prepared:
        for spec in specs:
            wanted.setdefault(spec.content_hash, spec.embedding_input)
    vectors: dict[str, object] = {}
    hashes = list(wanted)
    for i in range(0, len(hashes) if reuse else 0, 5000):
        rows = (
            Chunk.objects.filter(content_hash__in=hashes[i : i + 5000], embedding_model=embedder.model_name)
            .order_by()
            .values_list("content_hash", "embedding")
        )
        for digest, vector in rows:
            vectors.setdefault(digest, vector)
    missing = [h for h in hashes if h not in vectors]
    stats.reused = len(hashes) - len(missing)
    batch = max(getattr(embedder, "batch_size", 64), 1) * 4
    for i in range(0, len(missing), batch):
        part = missing[i : i + batch]
        with _Timer(stats, "embed"):
            embedded = embedder.embed([wanted[h] for h in part])
        vectors.update(zip(part, embedded, strict=True))
        stats.embedded += len(part)
        done = (i + len(part)) / len(missing)
        now = timezone.now()
        for document, _ in prepared:  # never backwards: a scan's bar is already past its text's share
            document.progress = max(document.progress, 0.15 + 0.8 * done)
            document.heartbeat_at = now
        Document.objects.filter(id__in=[d.id for d, _ in prepared]).update(
            progress=Greatest(F("progress"), Value(0.15 + 0.8 * done)), heartbeat_at=now
        )
        if live:
            progress.publish_bulk([d for d, _ in prepared])
    return vectors


_STAGING_SQL = """
CREATE TEMP TABLE IF NOT EXISTS chunk_staging (
    document_id bigint, collection_id bigint, ordinal integer, text text, token_count integer, page integer,
    heading_path text, content_hash varchar(64), embedding vector, embedding_model varchar(200)
) ON COMMIT DELETE ROWS
"""
_COPY_SQL = "COPY chunk_staging FROM STDIN WITH (FORMAT BINARY)"
_COPY_TYPES = ["int8", "int8", "int4", "text", "int4", "int4", "text", "varchar", "vector", "varchar"]
# The keyword vector is computed once, in the database, with the analyzer the query side uses
# (`docent_keywords`: stems in the collection's language, and snake_case identifiers whole,
# migrations 0014 and 0018); its term count is BM25's document length.
_INSERT_SQL = """
INSERT INTO retrieval_chunk (document_id, collection_id, ordinal, text, token_count, page, heading_path,
                             content_hash, embedding, embedding_model, search_vector, term_count)
SELECT s.document_id, s.collection_id, s.ordinal, s.text, s.token_count, s.page, s.heading_path,
       s.content_hash, s.embedding, s.embedding_model, v.tsv,
       (SELECT coalesce(sum(array_length(u.positions, 1)), 0) FROM unnest(v.tsv) u)
FROM chunk_staging s
JOIN retrieval_collection c ON c.id = s.collection_id
CROSS JOIN LATERAL (SELECT docent_keywords(s.heading_path || ' ' || s.text, c.indexed_language::regconfig) AS tsv) v
"""


def _raw_connection():
    """Django's psycopg connection with pgvector's binary adapters registered once."""
    connection.ensure_connection()
    raw = connection.connection
    if not getattr(raw, "_docent_vector", False):
        from pgvector.psycopg import register_vector

        register_vector(raw)
        raw._docent_vector = True
    return raw


def _chunks_remove(document_ids: Sequence[int]) -> None:
    """Delete documents' chunks; database triggers drop their postings and BM25 statistics."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM retrieval_chunk WHERE document_id = ANY(%s)", [list(document_ids)])


def _write_chunks(prepared, vectors, model_name: str) -> set[int]:
    """Replace the chunks of the prepared documents in one transaction: binary COPY into a staging
    table, then one INSERT that computes the keyword vector (and, by trigger, the BM25 postings)."""
    if not prepared:
        return set()
    ids = [d.id for d, _ in prepared]
    with transaction.atomic():
        # Lock the rows so a concurrent rerun of the same documents waits instead of interleaving.
        alive = set(
            Document.objects.select_for_update()
            .filter(id__in=ids, status=Document.Status.PROCESSING)
            .values_list("id", flat=True)
        )
        if not alive:
            return alive
        written = sorted(alive)
        _chunks_remove(written)
        raw = _raw_connection()
        with raw.cursor() as cursor:
            # Before the INSERT reads the collections' `indexed_language`: a keyword index being
            # rebuilt in another language holds this lock until it commits (`collection_rekey`),
            # and the INSERT's snapshot then reads the new language. Shared: writers into one
            # collection do not wait for each other.
            for collection_id in sorted({d.collection_id for d, _ in prepared if d.id in alive}):
                cursor.execute(f"SELECT pg_advisory_xact_lock_shared({_KEYING_LOCK})", [collection_id])
            cursor.execute(_STAGING_SQL)
            cursor.execute(
                "TRUNCATE chunk_staging"
            )  # inside an outer transaction, rows of an earlier call linger
            with cursor.copy(_COPY_SQL) as copy:
                copy.set_types(_COPY_TYPES)
                for document, specs in prepared:
                    if document.id not in alive:
                        continue
                    for ordinal, spec in enumerate(specs):
                        copy.write_row(
                            (
                                document.id,
                                document.collection_id,
                                ordinal,
                                spec.text,
                                spec.token_count,
                                spec.page,
                                spec.heading_path,
                                spec.content_hash,
                                vectors[spec.content_hash],
                                model_name,
                            )
                        )
            cursor.execute(_INSERT_SQL)  # triggers add the BM25 postings and statistics
        now = timezone.now()
        ready = []
        for document, specs in prepared:
            if document.id in alive:
                document.chunk_count = len(specs)
                ready.append(document)
        Document.objects.filter(id__in=alive).update(
            status=Document.Status.READY,
            progress=1.0,
            embedding_model=model_name,
            error="",
            finished_at=now,
            heartbeat_at=now,
            updated_at=now,
        )
        Document.objects.bulk_update(ready, ["chunk_count"], batch_size=500)
        # A version replaced by a newer one in this same batch is gone as well.
        alive -= _older_versions_remove([d for d in ready if d.replace_older])
    return alive


def documents_mark_retrying(*, document_ids: Sequence[int], reason: str) -> None:
    Document.objects.filter(id__in=document_ids).exclude(status=Document.Status.READY).update(
        status=Document.Status.QUEUED, error=f"retrying: {reason}"[:2000], heartbeat_at=timezone.now()
    )


def documents_fail(*, document_ids: Sequence[int], reason: str) -> None:
    for document in (
        Document.objects.filter(id__in=document_ids)
        .exclude(status=Document.Status.READY)
        .select_related("collection")
    ):
        document_fail(document=document, reason=reason)


def documents_sweep_stuck(*, stuck_after_s: int, max_attempts: int, broker_backlog: int) -> list[int]:
    """Re-queue documents a dead worker left behind; give up on those that keep failing.

    "processing" with a quiet heartbeat means the worker died. "queued" for long only means a lost
    message when the broker has nothing left to deliver; otherwise the queue is just long.
    """
    cutoff = timezone.now() - timezone.timedelta(seconds=stuck_after_s)
    stuck = Document.objects.filter(status=Document.Status.PROCESSING, heartbeat_at__lt=cutoff)
    if broker_backlog == 0:
        stuck = stuck | Document.objects.filter(status=Document.Status.QUEUED, heartbeat_at__lt=cutoff)
    stuck = stuck.filter(collection__deleted_at__isnull=True)  # those are the purge's
    requeued = []
    for document in stuck.select_related("collection"):
        if document.attempts >= max_attempts:
            document_fail(document=document, reason=f"gave up after {document.attempts} attempts")
            continue
        document_requeue(document=document)
        requeued.append(document.id)
    if requeued:
        log.warning("re-queued %d stuck documents: %s", len(requeued), requeued[:20])
    return requeued


def documents_reindex(*, model_name: str | None = None) -> int:
    """Queue every document embedded by another model than the current one; returns how many."""
    model_name = model_name or get_embedder().model_name
    stale = list(
        Document.objects.filter(status=Document.Status.READY)
        .exclude(embedding_model=model_name)
        .values_list("id", flat=True)
    )
    _requeue(stale, reset_attempts=False, batch_size=16)
    return len(stale)


def documents_reparse(*, kind: str) -> int:
    """Queue every ready document of a type to be read again by today's parser (after an upgrade
    that reads the type better); returns how many. Passages that come out the same keep their
    vectors, and the old passages answer until the new ones are written."""
    ids = list(
        Document.objects.filter(
            status=Document.Status.READY, kind=kind, collection__deleted_at=None
        ).values_list("id", flat=True)
    )
    _requeue(ids, reset_attempts=True, batch_size=16)
    return len(ids)


def keyword_index_rebuild() -> int:
    """Rebuild the BM25 postings, document frequencies and collection statistics from the chunks'
    keyword vectors; returns the number of postings.

    Postings are keyed by PostgreSQL's 64-bit text hash, which depends on the server's byte order:
    after restoring a dump on a server of another architecture, queries would no longer find them.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        # Taken first so no chunk is written or deleted while its postings are rebuilt.
        cursor.execute("LOCK TABLE retrieval_chunk IN SHARE MODE")
        # The postings' indexes are built again after the load: one sorted build is faster (22 s
        # instead of 41 for 6.8M postings) and packs them, where inserts into a live index split it.
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'retrieval_posting'")
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("TRUNCATE retrieval_posting, retrieval_term")
        cursor.execute(_POSTINGS_SQL.format(where="true"))
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute(_TERMS_SQL.format(where="true"))
        cursor.execute(_STATISTICS_SQL.format(where="true"))
        cursor.execute("SELECT count(*) FROM retrieval_posting")
        postings = cursor.fetchone()[0]
    if not connection.in_atomic_block:  # VACUUM cannot run inside a caller's transaction
        with connection.cursor() as cursor:
            # New rows are not yet all-visible: until a VACUUM, search's index-only scans visit the heap.
            cursor.execute("VACUUM ANALYZE retrieval_posting, retrieval_term")
    return postings


# Web sources: pages read from the web, kept as documents and read again on a schedule.


class WebSourceExists(ValueError):
    def __init__(self, message: str, source: WebSource):
        super().__init__(message)
        self.source = source


class WebSourcesFull(ValueError):
    pass


def web_source_add(
    *,
    collection: Collection,
    url: str,
    user=None,
    crawl: bool = False,
    max_pages: int = 50,
    refresh_hours: int = 24,
    header: tuple[str, str] | None = None,
) -> WebSource:
    """Add an address to a collection and queue its first reading. `web.Refused` for an address
    Docent does not read (not http, credentials in it, a private host); its host is checked again
    whenever it is fetched. `header`: (name, value) sent to the source's own site with each request
    (`web.check_header`: ValueError), its value kept sealed."""
    url = web.check_url(url)
    web.check_host(url)
    if header is not None:
        header = web.check_header(*header, url)
    _web_source_bounds(max_pages=max_pages, refresh_hours=refresh_hours)
    existing = WebSource.objects.filter(collection=collection, url=url).first()
    if existing is not None:
        raise WebSourceExists(f"{url} is already read into {collection.name}", existing)
    if WebSource.objects.filter(collection=collection).count() >= settings.DOCENT_WEB_MAX_SOURCES:
        raise WebSourcesFull(
            f"{collection.name} already reads {settings.DOCENT_WEB_MAX_SOURCES} web addresses, its most; "
            "remove one first (or crawl a site's folder from one address)"
        )
    try:
        with transaction.atomic():
            source = WebSource.objects.create(
                collection=collection,
                url=url,
                crawl=crawl,
                max_pages=max_pages,
                refresh_hours=refresh_hours,
                added_by=user,
                header_name=header[0] if header else "",
                header_sealed=sealed.seal(header[1]) if header else "",
            )
            web_source_queue(source=source)
            signs_in = {"header": header[0]} if header else {}
            _recorded_in(
                collection, "web_source_add", source, user, crawl=crawl, max_pages=max_pages, **signs_in
            )
    except IntegrityError:
        existing = WebSource.objects.get(collection=collection, url=url)
        raise WebSourceExists(f"{url} is already read into {collection.name}", existing) from None
    return source


def web_source_queue(*, source: WebSource) -> bool:
    """Queue a reading once the transaction commits; False when one is under way."""
    from .tasks import sync_web_source

    queued = (
        WebSource.objects.filter(id=source.id)
        .exclude(status=WebSource.Status.SYNCING, started_at__gt=_web_stale_before())
        .update(status=WebSource.Status.QUEUED, started_at=timezone.now())  # a task lost is sent again
    )
    if queued:
        source.status = WebSource.Status.QUEUED
        transaction.on_commit(lambda: sync_web_source.delay(source.id), robust=True)
    return bool(queued)


def _web_source_bounds(*, max_pages: int | None, refresh_hours: int | None) -> None:
    if max_pages is not None and not 1 <= max_pages <= settings.DOCENT_WEB_MAX_PAGES:
        raise ValueError(f"max_pages must be between 1 and {settings.DOCENT_WEB_MAX_PAGES}")
    if refresh_hours is not None and not 0 <= refresh_hours <= 24 * 366:
        raise ValueError("refresh_hours must be between 0 (never) and 8784 (a year)")


def web_source_update(
    *,
    source: WebSource,
    refresh_hours: int | None = None,
    max_pages: int | None = None,
    header: tuple[str, str] | None = None,
    actor=None,
) -> WebSource:
    """Change how often a source is read, how many pages it keeps, or its sign-in header (("", "")
    takes it away); None leaves each as it is. ValueError for values out of bounds or a header
    `web.check_header` refuses. The next reading uses them (one under way keeps its page limit, and
    sends the new header from its next slice on)."""
    changed = []
    _web_source_bounds(max_pages=max_pages, refresh_hours=refresh_hours)
    if refresh_hours is not None and refresh_hours != source.refresh_hours:
        source.refresh_hours = refresh_hours
        base = source.synced_at or timezone.now()
        source.next_sync_at = base + timezone.timedelta(hours=refresh_hours) if refresh_hours else None
        changed.append("refresh_hours")
    if max_pages is not None and max_pages != source.max_pages:
        source.max_pages = max_pages
        changed.append("max_pages")
    if header is not None:
        if header == ("", ""):
            source.header_name, source.header_sealed = "", ""
        else:
            name, value = web.check_header(*header, source.url)
            source.header_name, source.header_sealed = name, sealed.seal(value)
        changed.append("header")
    if changed:
        with transaction.atomic():
            fields = ["refresh_hours", "next_sync_at", "max_pages", "header_name", "header_sealed"]
            source.save(update_fields=fields)
            _recorded_in(source.collection, "web_source_update", source, actor, changed=changed)
    return source


def web_source_remove(*, source: WebSource, actor=None) -> int:
    """Remove a source and the documents read from it; the number of documents deleted."""
    with transaction.atomic():
        documents = list(Document.objects.filter(source=source).select_related("collection"))
        _documents_remove(documents)
        _recorded_in(source.collection, "web_source_remove", source, actor, documents=len(documents))
        source.delete()
    return len(documents)


def _web_stale_before():
    # A slice runs DOCENT_WEB_SLICE_S and its last page's fetch; one older than that and a margin
    # lost its worker.
    lost_after = settings.DOCENT_WEB_SLICE_S + 4 * settings.DOCENT_WEB_TIMEOUT_S + 300
    return timezone.now() - timezone.timedelta(seconds=lost_after)


def web_sources_due() -> list[int]:
    """Queue the sources whose time to be read again has come, readings a lost worker left (they
    go on from their last slice) and readings queued long ago whose task was lost; their ids."""
    now = timezone.now()
    live = WebSource.objects.filter(collection__deleted_at__isnull=True)  # a deleted one's wait for purge
    due = list(
        live.filter(refresh_hours__gt=0, next_sync_at__lte=now)
        .exclude(status__in=[WebSource.Status.SYNCING, WebSource.Status.QUEUED])
        .values_list("id", flat=True)
    ) + list(
        live.filter(
            status__in=[WebSource.Status.SYNCING, WebSource.Status.QUEUED],
            started_at__lte=_web_stale_before(),
        ).values_list("id", flat=True)
    )
    queued = []
    for source in WebSource.objects.filter(id__in=due):
        if web_source_queue(source=source):
            queued.append(source.id)
    return queued


def web_source_sync(*, source_id: int, reading: str | None = None) -> WebSource | None:
    """One slice of a source's reading (`DOCENT_WEB_SLICE_S`): a new reading without `reading`,
    else the slice after that reading's last. Pages new or changed become documents (a changed page
    replaces its older version once ready). When the reading is done, pages the server says are
    gone, or no longer in reach of a reading that visited everything, are deleted; a reading that
    fails at its first address deletes nothing. Otherwise its state is saved and the next slice
    queued. None when the source is gone or another reading holds it."""
    from .tasks import sync_web_source

    now = timezone.now()
    rows = WebSource.objects.filter(id=source_id, collection__deleted_at__isnull=True)
    if reading is None:
        reading = uuid.uuid4().hex
        claimed = rows.exclude(status=WebSource.Status.SYNCING, started_at__gt=_web_stale_before()).update(
            status=WebSource.Status.SYNCING, started_at=now, error="", reading=reading
        )
    else:
        claimed = rows.filter(status=WebSource.Status.SYNCING, reading=reading).update(started_at=now)
    if not claimed:
        return None
    source = WebSource.objects.select_related("collection").get(id=source_id)
    state = source.state or {}  # a lost reading's, when this one goes on from it
    began = state.get("began", time.time())
    tally = state.get("tally") or {"new": 0, "unchanged": 0, "skipped": 0, "deleted": 0}
    source.tally = None  # what became of the pages, for /metrics, once the reading is done
    left = began + settings.DOCENT_WEB_READING_S - time.time()
    try:
        if state.get("crawl"):
            crawl = web.Crawl.resume(state["crawl"])
        else:
            crawl = web.Crawl(source.url, crawl=source.crawl, max_pages=source.max_pages)
        # Pages asked for conditionally: only those whose document still stands (one deleted by
        # hand, or failed, is read whole again).
        standing = set(
            Document.objects.filter(source=source)
            .exclude(status=Document.Status.FAILED)
            .values_list("source_url", flat=True)
        )
        validators = {url: v for url, v in source.page_validators.items() if url in standing}
        until = time.monotonic() + min(settings.DOCENT_WEB_SLICE_S, left)
        header = None
        if source.header_name:
            try:
                header = (source.url, source.header_name, sealed.unseal(source.header_sealed))
            except sealed.Unreadable:
                raise web.WebError(
                    "its sign-in header can no longer be read (the server's secret key changed): set it again"
                ) from None
        with web.Fetcher(header=header) as fetcher:
            for page in crawl.pages(fetcher, until=until, validators=validators):
                outcome = _web_page_store(source, page)
                if outcome in ("new", "unchanged"):
                    crawl.keep(page.url)
                    tally[outcome] += 1
                    _web_page_validators(source, page)
                else:
                    crawl.skip(page.url, outcome)
    except web.WebError as exc:
        _web_source_done(source, status=WebSource.Status.FAILED, error=str(exc), retry=True)
        source.tally = tally
        return source
    except WebSource.DoesNotExist:
        return None
    except Exception:
        log.exception("reading web source %s failed", source_id)
        _web_source_done(
            source, status=WebSource.Status.FAILED, error="the reading stopped on an error", retry=True
        )
        raise
    if not crawl.done and time.time() - began >= settings.DOCENT_WEB_READING_S:
        crawl.stop(f"stopped after {settings.DOCENT_WEB_READING_S // 60} minutes, a reading's most")
    if not crawl.done:
        source.state = {"crawl": crawl.state(), "began": began, "tally": tally}
        saved = WebSource.objects.filter(id=source.id, reading=reading).update(
            state=source.state, page_hashes=source.page_hashes, page_validators=source.page_validators
        )
        if saved:
            transaction.on_commit(lambda: sync_web_source.delay(source.id, reading), robust=True)
        return source

    kept = set(crawl.kept)
    with transaction.atomic():
        pages = Document.objects.filter(source=source).select_related("collection")
        gone = set(crawl.gone)
        stale = [d for d in pages if d.source_url in gone or (crawl.complete and d.source_url not in kept)]
        _documents_remove(stale)
    skipped = [{"url": url, "reason": why} for url, why in crawl.skipped]
    if crawl.stopped:
        skipped.append({"url": source.url, "reason": crawl.stopped})
    tally["deleted"] = len({d.source_url for d in stale})
    tally["skipped"] = len(skipped)
    source.tally = tally
    failed = not kept and bool(skipped)
    _web_source_done(
        source,
        status=WebSource.Status.FAILED if failed else WebSource.Status.OK,
        error="no page it found could be kept" if failed else "",
        pages=len(kept),
        skipped=skipped[:100],
        page_hashes={url: h for url, h in source.page_hashes.items() if url in kept or not crawl.complete},
        page_validators={
            url: v for url, v in source.page_validators.items() if url in kept or not crawl.complete
        },
    )
    return source


def _web_page_store(source: WebSource, page) -> str:
    """Make the page a document, unless it is unchanged or its content is already one of the
    collection's documents: "new", "unchanged", or why it is not kept."""
    mine = Document.objects.filter(source=source, source_url=page.url)
    if page.not_modified:
        if mine.exclude(status=Document.Status.FAILED).exists():
            return "unchanged"
        source.page_validators.pop(page.url, None)  # its document deleted since: read whole next time
        return "its document was deleted while the page was being read; it is read again next time"
    digest = hashlib.sha256(page.body).hexdigest()
    if mine.filter(content_hash=digest).exists():
        return "unchanged"  # a page that failed to ingest would fail again: not taken anew each time
    if (
        page.text_hash
        and source.page_hashes.get(page.url) == page.text_hash
        and mine.exclude(status=Document.Status.FAILED).exists()
    ):
        return "unchanged"  # other bytes, the same text: a nonce or a build id in a script
    try:
        # Django's foreign keys are checked at commit: a source removed meanwhile fails there.
        with transaction.atomic():
            # A changed page's failed version answers nothing; left, each reading would add another.
            _documents_remove(list(mine.filter(status=Document.Status.FAILED).select_related("collection")))
            document, created = document_create(
                collection=source.collection,
                file=io.BytesIO(page.body),
                filename=web.document_name(page.url),
                title=page.title or None,
                user=source.added_by,
                replace=True,
                source=source,
                source_url=page.url,
                type_name=f"page{page.extension}",
            )
    except (UnsupportedType, UploadTooLarge) as exc:
        return str(exc)
    except IntegrityError:
        raise WebSource.DoesNotExist from None  # removed while it was being read
    if not created:
        return (
            f"the same content as {document.source_url or document.original_name}, already in the collection"
        )
    if page.text_hash:
        source.page_hashes[page.url] = page.text_hash
    return "new"


def _web_page_validators(source: WebSource, page) -> None:
    """Keep what a page can be asked for again conditionally, when its links are not needed: a
    304 has no body, so a crawled HTML page (whose links lead on) is always fetched whole."""
    if page.not_modified:
        return
    if page.validators and not (source.crawl and web.reading_html(page.content_type)):
        source.page_validators[page.url] = page.validators
    else:
        source.page_validators.pop(page.url, None)


# Failed readings in a row after which the person who added a source, and its team's admins, are told
# by email (once a streak: a reading that goes well starts the count again).
WEB_FAILURES_TOLD = 3


def web_source_failing_notify(*, source_id: int) -> int:
    """Email the person who added the source and its team's admins that it keeps failing, and why:
    how many were sent (none without a mail server, or once it reads well again)."""
    source = WebSource.objects.select_related("collection__team").filter(id=source_id).first()
    if source is None or not settings.EMAIL_HOST or source.status != WebSource.Status.FAILED:
        return 0
    admins = Membership.objects.filter(team_id=source.collection.team_id, role=Membership.Role.ADMIN)
    ids = {*admins.values_list("user_id", flat=True), *([source.added_by_id] if source.added_by_id else [])}
    users = list(selectors.users_reachable_by_email(ids=ids))
    if not users:
        return 0
    context = {"source": source, "collection": source.collection}
    subject = f"Docent cannot read {source.url}"[:200]
    body = render_to_string("retrieval/web_source_failing_email.txt", context)
    send_mail(subject, body, None, sorted({u.email for u in users}))
    return len(users)


def _web_source_done(source: WebSource, *, status: str, error: str = "", retry: bool = False, **fields):
    """End the reading. `retry`: it failed as a whole (the site down, its address gone), and is
    tried again sooner than the schedule: after an hour, then twice as long after each failure in
    a row (a page gone for good is not fetched every hour), never later than the schedule."""
    now = timezone.now()
    failures = source.failures + 1 if status == WebSource.Status.FAILED else 0
    hours = source.refresh_hours
    if retry and hours:
        hours = min(hours, 2 ** min(failures - 1, 16))
    fields.update(
        failures=failures,
        status=status,
        error=error[:2000],
        synced_at=now,
        next_sync_at=now + timezone.timedelta(hours=hours) if hours else None,
        reading="",
        state={},
    )
    # Only while this reading still holds the source: one taken over after it went quiet writes nothing.
    written = WebSource.objects.filter(id=source.id, reading=source.reading).update(**fields)
    for name, value in fields.items():
        setattr(source, name, value)
    if written and failures == WEB_FAILURES_TOLD and settings.EMAIL_HOST:
        from .tasks import web_source_failing_send

        transaction.on_commit(lambda: web_source_failing_send.delay(source.id), robust=True)
