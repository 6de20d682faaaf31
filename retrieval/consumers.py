"""Live document news for the library page: one group per team the user belongs to, and the group
of collections every team reads (for a user who has a team: without one, nothing is shared with
them)."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from assistant import metrics

from . import selectors
from .progress import EVERYONE_GROUP, team_group


class DocumentProgressConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        team_ids = await database_sync_to_async(lambda: list(selectors.team_ids_for_user(user=user)))()
        self.groups = [team_group(team_id) for team_id in sorted(team_ids)]
        if self.groups:
            self.groups.append(EVERYONE_GROUP)
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        metrics.websocket_opened(self, "documents")

    async def disconnect(self, code):
        metrics.websocket_closed(self)

    async def receive_json(self, content, **kwargs):
        pass  # the stream is one-way

    async def document_progress(self, event):
        await self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "progress"})

    async def document_deleted(self, event):
        await self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "deleted"})

    async def document_renamed(self, event):
        await self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "renamed"})

    async def collection_deleted(self, event):
        await self.send_json({"type": "collection_deleted", "id": event["id"]})

    async def collection_shared(self, event):
        await self.send_json({"type": "collection_shared", "id": event["id"]})

    async def collection_unshared(self, event):
        await self.send_json({"type": "collection_unshared", "id": event["id"]})

    async def member_removed(self, event):
        if event["user_id"] != self.scope["user"].id:
            return
        group = team_group(event["team_id"])
        await self.channel_layer.group_discard(group, self.channel_name)
        self.groups = [g for g in self.groups if g != group]
        await self.send_json({"type": "team_left", "team_id": event["team_id"]})
