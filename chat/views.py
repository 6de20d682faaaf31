from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from retrieval import selectors


@login_required
def index(request):
    collections = list(selectors.collections_for_user(user=request.user))
    return render(request, "chat/index.html", {"collections": collections})
