from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from . import selectors
from .api import document_out


@login_required
def library(request):
    collections = list(selectors.collections_for_user(user=request.user))
    documents = {}
    for d in selectors.documents_for_user(user=request.user).order_by("-created_at")[:500]:
        documents.setdefault(d.collection_id, []).append(document_out(d))
    for collection in collections:
        collection.recent = documents.get(collection.id, [])
    teams = list(selectors.teams_for_user(user=request.user))
    return render(request, "retrieval/library.html", {"collections": collections, "teams": teams})
