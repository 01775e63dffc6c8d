"""`{{name}}`: a notify-formatter plugin for ImpressoX Workers, written in Python.

It renders `[channel] title` and the body as plain text, with the title as the email
subject. Return several messages to split a long text; raise `Err("...")` to refuse a
notification (the delivery becomes a dead letter with that reason).
"""

from typing import List

from wit_world import exports
from wit_world.imports import types

NAME = "{{name}}"
VERSION = "0.1.0"


class FormatNotification(exports.FormatNotification):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name=NAME,
            version=VERSION,
            kind=types.PluginKind.NOTIFY_FORMATTER,
            description="plain text with the channel's name",
        )

    def format(self, notification: types.Notification, channel: str) -> List[types.RenderedMessage]:
        text = f"[{channel}] {notification.title}\n{notification.body}"
        if notification.priority == types.Priority.CRITICAL:
            text = "CRITICAL " + text
        return [
            types.RenderedMessage(
                text=text,
                subject=notification.title,
                html=None,
                parse_mode=types.ParseMode.PLAIN,
            )
        ]
