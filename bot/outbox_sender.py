"""Old import path of the WeCom outbox worker: now ``bot.outbox`` (the generic core) with the
channel ``bot.wecom.sender``. ``OutboxSender(settings, db, redis, client, ...)`` still works."""

from bot.outbox import backoff_seconds
from bot.wecom.sender import outbox_worker as OutboxSender

__all__ = ["OutboxSender", "backoff_seconds"]
