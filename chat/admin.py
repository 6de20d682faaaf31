from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from . import selectors, services
from .models import (
    Budget,
    Conversation,
    Feedback,
    Message,
    ModerationFlag,
    ModerationRule,
    Preferences,
    SavedPrompt,
    Usage,
)


class WithTotals(admin.ModelAdmin):
    """A list with a summary of every row its filters, search and date drill-down chose (not only of
    one page), computed by `totals(queryset)` and shown by the model's change_list template."""

    def totals(self, queryset) -> dict:
        raise NotImplementedError

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None) or {}
        if "cl" in context:  # not a redirect or an error page
            context["totals"] = self.totals(context["cl"].queryset)
        return response


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class FeedbackReason(admin.SimpleListFilter):
    """Ratings giving one reason ("Not accurate"), as the reader picked it under "Not helpful"."""

    title = "what was wrong"
    parameter_name = "reason"

    def lookups(self, request, model_admin):
        return list(Feedback.REASONS.items())

    def queryset(self, request, queryset):
        if self.value() in Feedback.REASONS:
            return queryset.filter(reasons__contains=[self.value()])
        return queryset


class CitationsToCheck(admin.SimpleListFilter):
    """Answers with a citation whose passage lacks a figure the answer states: where to look first
    when judging a model."""

    title = "citations to check"
    parameter_name = "to_check"

    def lookups(self, request, model_admin):
        return [("yes", "Some"), ("no", "None")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(checks=[])
        if self.value() == "no":
            return queryset.filter(checks=[])
        return queryset


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["role", "status", "text", "finish_reason", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(ReadOnly):
    list_display = ["title", "owner", "created_at", "updated_at", "shared_at"]
    search_fields = ["title", "owner__username"]
    list_filter = ["created_at", ("shared_at", admin.EmptyFieldListFilter)]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(ReadOnly):
    list_display = [
        "short",
        "role",
        "status",
        "user",
        "finish_reason",
        "ttft_ms",
        "total_ms",
        "completion_tokens",
        "created_at",
    ]
    list_filter = ["role", "status", "finish_reason", CitationsToCheck, "model"]
    search_fields = ["text", "user__username", "request_id"]
    readonly_fields = [f.name for f in Message._meta.fields]

    @admin.display(description="text")
    def short(self, obj):
        return obj.text[:80]


@admin.register(Feedback)
class FeedbackAdmin(WithTotals, ReadOnly):
    list_display = ["message", "user", "rating", "what_was_wrong", "comment", "created_at"]
    list_filter = ["rating", FeedbackReason, "message__model", "created_at"]
    search_fields = ["comment", "message__text", "user__username"]
    readonly_fields = ["message", "user", "rating", "what_was_wrong", "comment", "created_at"]

    @admin.display(description="what was wrong")
    def what_was_wrong(self, obj) -> str:
        return ", ".join(Feedback.REASONS.get(code, code) for code in obj.reasons)

    def totals(self, queryset) -> dict:
        return selectors.feedback_summary(feedback=queryset)


@admin.register(Usage)
class UsageAdmin(WithTotals, ReadOnly):
    list_display = ["user", "source", "model", "prompt_tokens", "completion_tokens", "created_at"]
    list_filter = ["source", "created_at", "model"]
    search_fields = ["user__username"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "user",
        "source",
        "message",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "created_at",
    ]

    def totals(self, queryset) -> dict:
        return selectors.usage_summary(usages=queryset)


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ["user", "monthly_tokens", "used_this_month", "note", "updated_at"]
    search_fields = ["user__username", "note"]
    autocomplete_fields = ["user"]

    def get_queryset(self, request):
        # The month's use in the list's own query, not one aggregate per row.
        return super().get_queryset(request).annotate(_used=selectors.month_tokens_of_user("user"))

    @admin.display(description="used this month", ordering="_used")
    def used_this_month(self, obj):
        return obj._used


@admin.register(ModerationRule)
class ModerationRuleAdmin(admin.ModelAdmin):
    list_display = [
        "pattern",
        "kind",
        "applies_to",
        "category",
        "enabled",
        "flag_count",
        "note",
        "updated_at",
    ]
    list_editable = ["enabled"]
    list_filter = ["enabled", "applies_to", "kind", "category"]
    search_fields = ["pattern", "note", "category"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_flags=Count("flags"))

    @admin.display(description="flags", ordering="_flags")
    def flag_count(self, obj):
        return obj._flags


@admin.register(ModerationFlag)
class ModerationFlagAdmin(admin.ModelAdmin):
    """Refused questions. Only `reviewed` changes; the rest is the record."""

    list_display = [
        "created_at",
        "user",
        "subject",
        "source",
        "checker",
        "category_list",
        "short",
        "rule",
        "reviewed",
    ]
    list_filter = ["reviewed", "subject", "source", "checker", "created_at"]
    search_fields = ["text", "user__username"]
    date_hierarchy = "created_at"
    list_select_related = ["user", "rule"]
    readonly_fields = [
        "created_at",
        "user",
        "subject",
        "source",
        "checker",
        "categories",
        "rule",
        "conversation",
        "text",
    ]
    fields = [*readonly_fields, "reviewed"]
    actions = ["mark_reviewed"]

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="text")
    def short(self, obj):
        return obj.text[:80]

    @admin.display(description="categories")
    def category_list(self, obj):
        return ", ".join(obj.categories)

    @admin.display(description="conversation")
    def conversation(self, obj):
        if obj.message_id is None:
            return "-"
        conversation_id = Message.objects.values_list("conversation_id", flat=True).get(id=obj.message_id)
        url = reverse("admin:chat_conversation_change", args=[conversation_id])
        return format_html('<a href="{}">open the conversation</a>', url)

    @admin.action(description="Mark the selected flags reviewed")
    def mark_reviewed(self, request, queryset):
        done = services.moderation_flags_review(flag_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{done} flag(s) marked reviewed.")


@admin.register(Preferences)
class PreferencesAdmin(admin.ModelAdmin):
    """What each person asks of their answers (set on their account page); an admin may read or
    clear it, not make it for them."""

    list_display = ["user", "instructions", "updated_at"]
    search_fields = ["user__username", "instructions"]
    readonly_fields = ["user", "updated_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(SavedPrompt)
class SavedPromptAdmin(admin.ModelAdmin):
    """Each person's saved prompts and each team's (kept on the account page, a team's by its
    admins); an admin may read, mend or delete one, not make it for them."""

    list_display = ["name", "user", "team", "text", "updated_at"]
    list_filter = ["team"]
    search_fields = ["name", "text", "user__username", "team__name"]
    readonly_fields = ["user", "team", "created_at", "updated_at"]

    def has_add_permission(self, request, obj=None):
        return False
