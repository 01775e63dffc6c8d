// `{{name}}`: an event-handler plugin for ImpressoX Workers, written in JavaScript.
//
// It keeps each event in the `docs` collection `events`, once per event id (grant it:
// `[plugins.grants.{{name}}] docs = ["events"]`). The capabilities it may import are listed
// in `wit/world.wit`: add `import kv;`, `import notify;` or `import prices;` there when it
// uses them, and grant them.

import { upsert } from "impressox:plugin/docs@0.1.0";

const NAME = "{{name}}";
const VERSION = "0.1.0";

export const handleEvent = {
  info() {
    return { name: NAME, version: VERSION, kind: "event-handler", description: "stores each event once" };
  },

  handle(event) {
    if (event.fields.length === 0) return { tag: "dead-letter", val: "event has no fields" };
    const fields = Object.fromEntries(event.fields.map((f) => [f.name, f.value]));
    try {
      // Upserting by the event's id keeps one document however often it is delivered.
      upsert("events", event.id, JSON.stringify({ stream: event.stream, fields }));
    } catch (e) {
      return { tag: "retry", val: String(e?.payload ?? e) };
    }
    return { tag: "ack" };
  },
};
