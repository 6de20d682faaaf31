from django.core.management.base import BaseCommand

from retrieval import services


class Command(BaseCommand):
    help = "Create a user (or update the password) and add them to a team, creating the team if needed."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--team", required=True)
        parser.add_argument("--password")
        parser.add_argument("--team-admin", action="store_true")
        parser.add_argument("--staff", action="store_true")

    def handle(self, username, team, password, team_admin, staff, **options):
        user = services.user_provision(
            username=username, team_name=team, password=password, team_admin=team_admin, staff=staff
        )
        self.stdout.write(f"user {user.username} is in team {team}")
