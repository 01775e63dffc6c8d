"""`{{name}}`: a task plugin for ImpressoX Workers, written in Python.

It counts its runs in `kv` (grant it: `[plugins.grants.{{name}}] kv = true`). The
capabilities it may import are listed in `wit/world.wit`: add `import docs;`,
`import notify;` or `import prices;` there when it uses them, and grant them.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import kv, types

NAME = "{{name}}"
VERSION = "0.1.0"


class RunTask(exports.RunTask):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name=NAME,
            version=VERSION,
            kind=types.PluginKind.TASK,
            description="counts its runs",
        )

    def run(self, run: types.TaskRun) -> types.TaskReport:
        try:
            args = json.loads(run.args_json or "{}")
        except ValueError:
            raise Err("args are not JSON")
        # Keys are this plugin's own; `incr` is atomic, across hosts on Redis. A failing
        # store raises Err(...), which fails the run (the scheduler retries it).
        runs = kv.incr("runs", 1)
        kv.set("last-schedule", run.schedule.encode(), None)
        return types.TaskReport(
            summary=f"run {runs} of `{run.schedule}`",
            data_json=json.dumps({"runs": runs, "args": args}),
        )
