"""`{{name}}`: an event-handler plugin for ImpressoX Workers, written in Python.

It keeps each event in the `docs` collection `events`, once per event id (grant it:
`[plugins.grants.{{name}}] docs = ["events"]`). The capabilities it may import are listed
in `wit/world.wit`: add `import kv;`, `import notify;` or `import prices;` there when it
uses them, and grant them.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import docs, types

NAME = "{{name}}"
VERSION = "0.1.0"


class HandleEvent(exports.HandleEvent):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name=NAME,
            version=VERSION,
            kind=types.PluginKind.EVENT_HANDLER,
            description="stores each event once",
        )

    def handle(self, event: types.Event) -> types.Outcome:
        if not event.fields:
            return types.Outcome_DeadLetter("event has no fields")
        document = {"stream": event.stream, "fields": {f.name: f.value for f in event.fields}}
        try:
            # Upserting by the event's id keeps one document however often it is delivered.
            docs.upsert("events", event.id, json.dumps(document))
        except Err as e:
            return types.Outcome_Retry(str(e.value))
        return types.Outcome_Ack()
