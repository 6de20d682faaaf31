import csv
import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Count, Sum
from django.http import Http404, HttpResponse
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html

from . import audit, downloads, sealed, selectors, services, sso, web
from .models import ApiKey, AuditEvent, Chunk, Collection, Document, Membership, SsoIdentity, Team, WebSource


def _deletion_summary(model_admin, objs, request):
    """The delete confirmation's summary, counted in SQL: Django's own walks every related row,
    which for a collection means loading each passage with its vector."""
    objs = list(objs)
    if model_admin.model is Team:
        documents = Document.objects.filter(collection__team__in=objs)
    else:
        documents = Document.objects.filter(collection__in=objs)
    counts = documents.aggregate(documents=Count("id"), chunks=Sum("chunk_count"))
    lines = [
        f"{model_admin.model._meta.verbose_name.capitalize()}: {obj} (with its documents and their passages)"
        for obj in objs
    ]
    model_count = {
        model_admin.model._meta.verbose_name_plural: len(objs),
        "documents": counts["documents"],
        "passages": counts["chunks"] or 0,
    }
    perms_needed = (
        set() if model_admin.has_delete_permission(request) else {model_admin.model._meta.verbose_name}
    )
    return lines, model_count, perms_needed, []


class _LiveTeamChoices:
    """A deleted team (its collections still being purged) is no choice for a new member or
    collection."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "team":
            kwargs["queryset"] = Team.objects.filter(deleted_at__isnull=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "shared_with":
            kwargs["queryset"] = Team.objects.filter(deleted_at__isnull=True)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]
    readonly_fields = ["from_sso"]


class TeamsInline(_LiveTeamChoices, admin.TabularInline):
    """A user's teams, on the user's page: an account made there is put in its teams at once."""

    model = Membership
    fk_name = "user"
    extra = 1
    autocomplete_fields = ["team"]
    readonly_fields = ["from_sso"]
    verbose_name = "team"
    verbose_name_plural = "teams"


class SsoIdentityInline(admin.TabularInline):
    """Who the person is at the single sign-on provider; deleting the row unlinks it (their next
    sign-in there links an account again, as a first one does)."""

    model = SsoIdentity
    extra = 0
    fields = readonly_fields = ["issuer", "subject", "created_at", "last_sign_in_at"]

    def has_add_permission(self, request, obj=None):
        return False  # made by signing in


class _TellsRemovedMembers:
    """A membership deleted from an inline: the removed member's open pages stop hearing the team."""

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        for membership in getattr(formset, "deleted_objects", ()):
            if isinstance(membership, Membership):
                services.member_left(team_id=membership.team_id, user_id=membership.user_id)


User = get_user_model()


class AdminSignInForm(AdminAuthenticationForm):
    """The admin's sign-in, under the same single sign-on policy as the app's (superusers always pass)."""

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        sso.password_check(user)


admin.site.login_form = AdminSignInForm
admin.site.unregister(User)


@admin.register(User)
class DocentUserAdmin(_TellsRemovedMembers, UserAdmin):
    inlines = [*UserAdmin.inlines, TeamsInline, SsoIdentityInline]
    actions = ["email_password_reset"]

    def get_inlines(self, request, obj):
        # A user being added has no identity yet (and the form would want the inline's management form).
        return self.inlines if obj is not None else [i for i in self.inlines if i is not SsoIdentityInline]

    @admin.action(description="Email a link to set a new password")
    def email_password_reset(self, request, queryset):
        """Also the way to invite someone: an account made with an address and no password."""
        if not settings.DOCENT_PASSWORD_RESET:
            self.message_user(
                request,
                "No mail server is configured (EMAIL_HOST): set the password on the user's page instead.",
                messages.ERROR,
            )
            return
        users = list(queryset)
        reachable = services.password_reset_queue(
            user_ids=[u.id for u in users], base_url=request.build_absolute_uri("/")
        )
        if reachable:
            self.message_user(
                request,
                f"A link to set a new password is on its way to {', '.join(u.email for u in reachable)}.",
                messages.SUCCESS,
            )
        unreachable = [u.get_username() for u in users if u not in reachable]
        if unreachable:
            self.message_user(
                request,
                f"No link for {', '.join(unreachable)}: inactive, or no email address on their page.",
                messages.WARNING,
            )


@admin.register(Team)
class TeamAdmin(_TellsRemovedMembers, admin.ModelAdmin):
    list_display = ["name", "member_count", "created_at", "deleted_at"]
    list_filter = [("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["name"]
    readonly_fields = ["deleted_at"]
    inlines = [MembershipInline]

    def has_change_permission(self, request, obj=None):
        # A deleted team is only shown until its collections' purges remove it.
        return (obj is None or obj.deleted_at is None) and super().has_change_permission(request, obj)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_members=Count("memberships"))

    @admin.display(ordering="_members", description="members")
    def member_count(self, obj):
        return obj._members

    def get_deleted_objects(self, objs, request):
        return _deletion_summary(self, objs, request)

    # Through the service: gone at once for its members; collections, documents, passages and files
    # purged by tasks, after which the team's row goes too.
    def delete_model(self, request, obj):
        services.team_delete(team=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for team in queryset:
            self.delete_model(request, team)


@admin.register(Membership)
class MembershipAdmin(_LiveTeamChoices, admin.ModelAdmin):
    list_display = ["user", "team", "role", "from_sso", "created_at"]
    list_filter = ["role", "from_sso", "team"]
    search_fields = ["user__username", "team__name"]
    autocomplete_fields = ["user", "team"]

    # A removed member's open pages stop hearing the team at once.
    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        services.member_left(team_id=obj.team_id, user_id=obj.user_id)

    def delete_queryset(self, request, queryset):
        removed = list(queryset.values_list("team_id", "user_id"))
        super().delete_queryset(request, queryset)
        for team_id, user_id in removed:
            services.member_left(team_id=team_id, user_id=user_id)


class CollectionForm(forms.ModelForm):
    class Meta:
        model = Collection
        fields = "__all__"  # noqa: DJ007 - the admin's fieldsets are the model's editable fields

    def clean_language(self):
        language = self.cleaned_data["language"]
        try:
            services.collection_language_check(language)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return language

    def clean_starter_questions(self):
        try:
            return services.collection_questions_clean(self.cleaned_data["starter_questions"] or [])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(Collection)
class CollectionAdmin(_LiveTeamChoices, admin.ModelAdmin):
    form = CollectionForm
    list_display = ["name", "team", "language", "document_count", "created_at", "deleted_at"]
    list_filter = ["team", "language", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "team__name"]
    readonly_fields = ["indexed_language", "deleted_at"]
    filter_horizontal = ["shared_with"]

    def save_model(self, request, obj, form, change):
        if not change:  # an empty collection's keyword index is in its language from the start
            obj.indexed_language = obj.language
        # Its readers before the form's change: their pages hear of the teams that gain or lose it.
        obj._readers_before = (
            selectors.collection_readers(collection_ids=[obj.id])[obj.id]
            if change
            else ({obj.team_id}, False)
        )
        super().save_model(request, obj, form, change)
        if obj.language != obj.indexed_language:  # a new language: the index is built again
            services.collection_rekey_queue(collection_id=obj.id)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)  # the shares are saved here
        services.collection_readers_changed(collection=form.instance, before=form.instance._readers_before)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_documents=Count("documents"))

    @admin.display(ordering="_documents", description="documents")
    def document_count(self, obj):
        return obj._documents

    def get_deleted_objects(self, objs, request):
        return _deletion_summary(self, objs, request)

    # Through the service: gone at once for everyone, documents, passages and files purged by a task.
    def delete_model(self, request, obj):
        services.collection_delete(collection=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for collection in queryset:
            services.collection_delete(collection=collection, actor=request.user)


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "collection",
        "kind",
        "status",
        "progress_pct",
        "chunk_count",
        "attempts",
        "short_error",
        "created_at",
    ]
    list_filter = ["status", "kind", "collection__team", "collection"]
    search_fields = ["title", "original_name", "content_hash"]
    readonly_fields = [
        "content_hash",
        "kind",
        "size",
        "status",
        "progress",
        "error",
        "attempts",
        "chunk_count",
        "embedding_model",
        "stored_file",
        "uploaded_by",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "replace_older",
        "heartbeat_at",
        "source",
        "source_url",
    ]
    fields = ["title", "collection", "original_name", *readonly_fields]
    actions = ["reingest", "retry_failed", "delete_with_chunks"]

    def has_add_permission(self, request):
        return False  # documents arrive through upload, the API or `manage.py ingest`

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # our delete also removes files, through the service
        return actions

    @admin.display(description="file")
    def stored_file(self, obj):
        # The storage's own URL is not served; this view hands the file back safely.
        url = reverse("admin:retrieval_document_file", args=[obj.pk])
        return format_html('<a href="{}">{}</a> ({})', url, obj.original_name, filesizeformat(obj.size))

    def get_urls(self):
        view = self.admin_site.admin_view(self.file_view)
        return [path("<int:document_id>/file/", view, name="retrieval_document_file"), *super().get_urls()]

    def file_view(self, request, document_id: int):
        document = Document.objects.filter(pk=document_id).first()
        if document is None or not self.has_view_permission(request, document):
            raise Http404("no such document")
        return downloads.file_response(document)

    @admin.display(description="progress", ordering="progress")
    def progress_pct(self, obj):
        return f"{obj.progress:.0%}"

    @admin.display(description="error")
    def short_error(self, obj):
        return (obj.error[:80] + "…") if len(obj.error) > 80 else obj.error

    @admin.action(description="Re-ingest selected documents")
    def reingest(self, request, queryset):
        for document in queryset:
            services.document_requeue(document=document, reset_attempts=True, actor=request.user)
        self.message_user(request, f"queued {queryset.count()} documents", messages.SUCCESS)

    @admin.action(description="Retry failed documents")
    def retry_failed(self, request, queryset):
        failed = queryset.filter(status=Document.Status.FAILED)
        n = 0
        for document in failed:
            services.document_requeue(document=document, reset_attempts=True, actor=request.user)
            n += 1
        self.message_user(request, f"queued {n} failed documents", messages.SUCCESS)

    @admin.action(description="Delete selected documents and their chunks")
    def delete_with_chunks(self, request, queryset):
        n = 0
        for document in queryset:
            services.document_delete(document=document, actor=request.user)
            n += 1
        self.message_user(request, f"deleted {n} documents", messages.SUCCESS)

    def delete_model(self, request, obj):
        services.document_delete(document=obj, actor=request.user)


class WebSourceForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")  # Django 6.0's default, chosen now
    header_value = forms.CharField(
        required=False,
        max_length=4096,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Sent as the header above to the source's own site. Kept sealed and never shown: "
        "leave empty to keep the one set; clear the header's name to take it away.",
    )

    class Meta:
        model = WebSource
        fields = ["collection", "url", "crawl", "max_pages", "refresh_hours", "header_name"]
        help_texts = {"header_name": "A header to sign in with, such as Authorization or Cookie (optional)."}

    def clean(self):
        data = super().clean()
        name, value, url = data.get("header_name", "").strip(), data.get("header_value", ""), data.get("url")
        if not url:
            return data
        if name and not value and not (self.instance.header_sealed and name == self.instance.header_name):
            self.add_error("header_value", "give the header's value")
        elif name and value:
            try:
                data["header_name"], value = web.check_header(name, value, url)
            except ValueError as exc:
                self.add_error("header_value", str(exc))
                return data
            self.instance.header_sealed = sealed.seal(value)
        elif not name:
            self.instance.header_sealed = ""
        return data

    def clean_url(self):
        try:
            return web.check_url(self.cleaned_data["url"])
        except web.Refused as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_max_pages(self):
        value = self.cleaned_data["max_pages"]
        if not 1 <= value <= settings.DOCENT_WEB_MAX_PAGES:
            raise forms.ValidationError(
                f"between 1 and {settings.DOCENT_WEB_MAX_PAGES} (DOCENT_WEB_MAX_PAGES)"
            )
        return value


@admin.register(WebSource)
class WebSourceAdmin(_LiveTeamChoices, admin.ModelAdmin):
    """Web pages and sites read into collections. Removing one deletes the documents read from it."""

    form = WebSourceForm
    list_display = [
        "url",
        "collection",
        "crawl",
        "status",
        "pages",
        "document_count",
        "synced_at",
        "next_sync_at",
    ]
    list_filter = ["status", "crawl", "collection__team", "collection"]
    search_fields = ["url", "error"]
    readonly_fields = [
        "status",
        "error",
        "failures",
        "pages",
        "skipped",
        "added_by",
        "created_at",
        "synced_at",
        "started_at",
        "next_sync_at",
    ]
    fields = [
        "collection",
        "url",
        "crawl",
        "max_pages",
        "refresh_hours",
        "header_name",
        "header_value",
        *readonly_fields,
    ]
    actions = ["read_now", "remove_with_documents"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(document_count=Count("documents"))

    @admin.display(description="documents", ordering="document_count")
    def document_count(self, obj):
        return obj.document_count

    def save_model(self, request, obj, form, change):
        if not change:
            obj.added_by = request.user
        read_anew = not change or {"url", "crawl", "max_pages"} & set(form.changed_data)
        if read_anew:
            obj.state = {}  # a reading lost part-way would otherwise go on with the old address
        super().save_model(request, obj, form, change)
        if read_anew:
            services.web_source_queue(source=obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # removing also deletes its documents, through the service
        return actions

    @admin.action(description="Read selected sources again now")
    def read_now(self, request, queryset):
        n = sum(services.web_source_queue(source=source) for source in queryset)
        self.message_user(request, f"queued {n} readings", messages.SUCCESS)

    @admin.action(description="Remove selected sources and the documents read from them")
    def remove_with_documents(self, request, queryset):
        sources = list(queryset)
        n = sum(services.web_source_remove(source=source, actor=request.user) for source in sources)
        self.message_user(request, f"removed {len(sources)} sources and {n} documents", messages.SUCCESS)

    def delete_model(self, request, obj):
        services.web_source_remove(source=obj, actor=request.user)


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ["document", "ordinal", "page", "heading_path", "token_count", "embedding_model"]
    list_filter = ["embedding_model", "collection"]
    search_fields = ["text", "heading_path", "document__title"]
    list_select_related = ["document"]
    exclude = ["embedding"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "embedding"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    list_display = ["user", "issuer", "subject", "created_at", "last_sign_in_at"]
    list_filter = ["issuer"]
    search_fields = ["user__username", "user__email", "subject"]
    fields = readonly_fields = ["user", "issuer", "subject", "created_at", "last_sign_in_at"]

    def has_add_permission(self, request):
        return False  # made by signing in with the provider


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["prefix", "hashed_key", "created_at", "last_used_at", "user"]
    fields = ["user", "name", "prefix", "hashed_key", "created_at", "last_used_at", "revoked_at"]

    def has_add_permission(self, request):
        return False  # keys are shown once, so they are made with `manage.py create_api_key`


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Who did what, when and from where; written by Docent, never changed here. Django admin's own
    changes are in its "Recent actions" (LogEntry) as well."""

    list_display = ["at", "who", "what", "target", "team", "ip"]
    list_filter = ["action", "at", "team"]
    search_fields = ["actor_name", "target", "target_id", "ip", "request_id"]
    date_hierarchy = "at"
    list_select_related = ["team"]
    fields = [
        "at",
        "actor",
        "actor_name",
        "action",
        "team",
        "target_type",
        "target_id",
        "target",
        "details",
        "ip",
        "request_id",
    ]
    readonly_fields = fields

    actions = ["download_csv"]

    @admin.display(description="who", ordering="actor_name")
    def who(self, obj):
        return obj.actor_name or "system"

    @admin.action(description="Download selected events as CSV")
    def download_csv(self, request, queryset):
        """For an auditor's spreadsheet: every field, oldest first (select all to take every page)."""
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="docent-audit.csv"'
        columns = [f for f in self.fields if f != "actor"]  # the name stands for the account
        shown = {
            "at": lambda e: e.at.isoformat(),
            "actor_name": lambda e: e.actor_name or "system",
            "team": lambda e: e.team.name if e.team else "",
            "details": lambda e: json.dumps(e.details, ensure_ascii=False),
            "ip": lambda e: e.ip or "",
        }
        writer = csv.writer(response)
        writer.writerow(columns)
        for event in queryset.select_related("team").order_by("at", "id"):
            row = [shown[c](event) if c in shown else getattr(event, c) for c in columns]
            # A cell a spreadsheet would run as a formula (a user name or page title chosen to) is quoted.
            writer.writerow(["'" + v if v[:1] in ("=", "+", "-", "@") else v for v in map(str, row)])
        return response

    @admin.display(description="what", ordering="action")
    def what(self, obj):
        return audit.ACTIONS.get(obj.action, obj.action)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # an audit log an admin can prune is none; DOCENT_AUDIT_RETENTION_DAYS does
