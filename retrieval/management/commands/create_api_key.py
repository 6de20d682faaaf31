from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from retrieval import services


class Command(BaseCommand):
    help = "Create an API key for a user. The key is printed once, alone on the last line; only its hash is kept."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="default")

    def handle(self, username, name, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        key, raw = services.api_key_create(user=user, name=name)
        self.stdout.write(f"API key {key.name!r} for {user.username} (shown once, store it now):")
        self.stdout.write(raw)
