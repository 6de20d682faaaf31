from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from retrieval import selectors
from retrieval.parsing import EXTENSIONS

from . import selectors as chat_selectors
from . import services
from .models import Conversation, Feedback, Preferences, SavedPrompt
from .providers import chat_models


@login_required
def index(request):
    collections = list(selectors.collections_for_user(user=request.user))
    # The composer's attach button takes what the library's upload takes, into a collection of the
    # user's own teams (one shared with them is read-only).
    team_ids = selectors.team_ids_for_user(user=request.user)
    context = {
        "collections": collections,
        # Offered before a conversation starts; chat.js keeps those of the collections in scope.
        "suggestions": [
            {"collection": c.id, "question": q} for c in collections for q in c.starter_questions
        ],
        "attachable": [c for c in collections if c.team_id in team_ids],
        "models": chat_models(),  # a choice is offered when there are two or more
        # What "Not helpful" offers to say was wrong.
        "feedback_reasons": [{"code": c, "label": label} for c, label in Feedback.REASONS.items()],
        "prompts": chat_selectors.prompts_for_user(user=request.user),  # "/name" in the box
        "accept": ",".join(EXTENSIONS),
    }
    return render(request, "chat/index.html", context)


@login_required
def shared(request, token: str):
    """A shared conversation, read-only; 404 unless the viewer may read every passage it cites."""
    try:
        conversation, messages = chat_selectors.shared_conversation_get(user=request.user, token=token)
    except Conversation.DoesNotExist:
        raise Http404("no such shared conversation") from None
    context = {
        "conversation": conversation,
        "messages": messages,
        "mine": conversation.owner_id == request.user.id,
    }
    response = render(request, "chat/shared.html", context)
    response["Referrer-Policy"] = "no-referrer"  # the link is the key: it must not leak to documents opened
    return response


ARCHIVED_SHOWN = 200


@login_required
def account(request):
    """The signed-in person's own page: who they are, their teams, this month's tokens, the
    instructions their answers follow (kept in the box when refused), and their conversations to
    download or delete (all at once, once the box saying so is ticked), and the archived ones to open
    or bring back."""
    error = prompt_error = ""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "delete_conversations" and request.POST.get("confirm"):
            deleted = services.conversations_delete_all(user=request.user)
            return redirect(f"{reverse('account')}?deleted={deleted}")
        if action == "unarchive":
            try:
                conversation = chat_selectors.conversation_get(
                    user=request.user, conversation_id=request.POST.get("conversation", "")
                )
            except (Conversation.DoesNotExist, ValidationError):
                raise Http404("no such conversation") from None
            services.conversation_archive(conversation=conversation, archived=False)
            return redirect(f"{reverse('account')}#archived")
        if action == "prompt_save":
            team = request.POST.get("team", "")
            try:  # under a name already kept (by the same owner), the new text replaces the old
                services.prompt_save(
                    user=request.user,
                    name=request.POST.get("name", ""),
                    text=request.POST.get("text", ""),
                    replace=True,
                    team_id=int(team) if team.isdigit() else None,
                )
                return redirect(f"{reverse('account')}#prompts")
            except ValidationError as exc:
                prompt_error = f"Not saved: {exc.messages[0]}."
            except (services.NotFound, services.NotTeamAdmin) as exc:
                prompt_error = f"Not saved: {exc}."
        elif action == "prompt_delete":
            try:
                services.prompt_delete(user=request.user, prompt_id=int(request.POST.get("prompt", "0")))
            except (services.NotFound, ValueError):
                raise Http404("no such prompt") from None
            return redirect(f"{reverse('account')}#prompts")
        elif action == "instructions":
            try:
                services.instructions_set(
                    user=request.user, instructions=request.POST.get("instructions", "")
                )
                return redirect(f"{reverse('account')}?saved=1")
            except ValidationError as exc:
                error = f"Not saved: {exc.messages[0]}."
        else:
            return redirect("account")
    used = chat_selectors.usage_for_user(user=request.user)
    quota = chat_selectors.quota_for_user(user=request.user)
    administered = selectors.team_ids_administered(user=request.user)
    teams = list(selectors.teams_for_user(user=request.user).order_by("name"))
    deleted = request.GET.get("deleted", "")
    context = {
        "teams": [(t.name, "admin" if t.id in administered else "member") for t in teams],
        "tokens": used["prompt_tokens"] + used["completion_tokens"],
        "quota": quota,
        "renews": chat_selectors.month_renews(used["since"]),
        "conversations": chat_selectors.conversation_count(user=request.user),
        "archived": chat_selectors.conversations_for_user(user=request.user, archived=True)[:ARCHIVED_SHOWN],
        "archived_count": chat_selectors.conversations_for_user(user=request.user, archived=True).count(),
        "deleted": int(deleted) if deleted.isdigit() else None,
        "instructions": request.POST.get("instructions", "")
        if error
        else chat_selectors.user_instructions(user=request.user),
        "instructions_max": Preferences.INSTRUCTIONS_MAX,
        "saved": request.GET.get("saved") == "1",
        "prompts": chat_selectors.prompts_for_user(user=request.user),
        "prompt_error": prompt_error,
        # A refused prompt stays in the form.
        "prompt_name": request.POST.get("name", "") if prompt_error else "",
        "prompt_text": request.POST.get("text", "") if prompt_error else "",
        "prompt_text_max": SavedPrompt.TEXT_MAX,
        "retention_days": settings.DOCENT_CONVERSATION_RETENTION_DAYS,
        # The teams whose prompts the person keeps (its admins do), to save one for everyone in it.
        "prompt_teams": [t for t in teams if t.id in administered],
        "prompt_team": int(request.POST["team"])
        if prompt_error and request.POST.get("team", "").isdigit()
        else None,
        "error": error,
    }
    return render(request, "chat/account.html", context)
