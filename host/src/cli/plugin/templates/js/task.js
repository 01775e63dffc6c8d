// `{{name}}`: a task plugin for ImpressoX Workers, written in JavaScript.
//
// It counts its runs in `kv` (grant it: `[plugins.grants.{{name}}] kv = true`). The
// capabilities it may import are listed in `wit/world.wit`: add `import docs;`,
// `import notify;` or `import prices;` there when it uses them, and grant them.

import { incr, set } from "impressox:plugin/kv@0.1.0";

const NAME = "{{name}}";
const VERSION = "0.1.0";

export const runTask = {
  info() {
    return { name: NAME, version: VERSION, kind: "task", description: "counts its runs" };
  },

  run(run) {
    let args;
    try {
      args = JSON.parse(run.argsJson || "{}");
    } catch {
      throw "args are not JSON";
    }
    // Keys are this plugin's own; `incr` is atomic, across hosts on Redis. A failing store
    // throws, which fails the run (the scheduler retries it).
    const runs = incr("runs", 1n);
    set("last-schedule", new TextEncoder().encode(run.schedule), undefined);
    return {
      summary: `run ${runs} of \`${run.schedule}\``,
      dataJson: JSON.stringify({ runs: Number(runs), args }),
    };
  },
};
