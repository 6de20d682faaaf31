from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from retrieval import selectors
from retrieval.parsing import EXTENSIONS

from . import selectors as chat_selectors
from .models import Conversation


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
