from django.contrib import admin

from . import selectors
from .models import Budget, Conversation, Feedback, Message, Usage


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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
    list_display = ["title", "owner", "created_at", "updated_at"]
    search_fields = ["title", "owner__username"]
    list_filter = ["created_at"]
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
    list_filter = ["role", "status", "finish_reason", "model"]
    search_fields = ["text", "user__username", "request_id"]
    readonly_fields = [f.name for f in Message._meta.fields]

    @admin.display(description="text")
    def short(self, obj):
        return obj.text[:80]


@admin.register(Feedback)
class FeedbackAdmin(ReadOnly):
    list_display = ["message", "user", "rating", "comment", "created_at"]
    list_filter = ["rating", "created_at"]
    search_fields = ["comment", "message__text", "user__username"]
    readonly_fields = ["message", "user", "rating", "comment", "created_at"]


@admin.register(Usage)
class UsageAdmin(ReadOnly):
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
