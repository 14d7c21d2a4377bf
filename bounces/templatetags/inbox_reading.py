"""How a mailbox is read for bounces, for its scan card: ``{% load inbox_reading %}``, then
``{% inbox_reading channel as reading %}``: ``reading.words`` ("Read through the Gmail API:
Inbox and Spam"), ``reading.folders`` (each folder with its cursor, None before its first scan),
``reading.choice`` (the kind can be read by IMAP instead) and ``reading.api`` (read through it
now)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django import template

from bounces import inbox
from channels.models import Channel

register = template.Library()


@register.simple_tag
def inbox_reading(channel: Channel) -> dict[str, Any]:
    return {
        "words": inbox.path_words(channel),
        "folders": [
            (SimpleNamespace(key=folder.key, name=inbox.folder_name(folder)), cursor)
            for folder, cursor in inbox.folder_cursors(channel)
        ],
        "choice": bool(channel.kind_spec.reading_api) and not channel.oauth.demo,
        "api": inbox.through_api(channel),
        "api_name": channel.kind_spec.reading_api,
    }
