"""`py-sandbox`: what stock CPython does inside the host's sandbox, chosen by the channel.

- `ok`: renders the title.
- `env`: reports what the guest sees: environment variables, arguments, working directory,
  and what listing `/`, opening a file and connecting a socket (to the port in the body) do.
- `print`: prints a line in several writes (as `print` with several arguments does) and a
  line to stderr.
- `slow`: sleeps 50 ms, then renders (so calls overlap).
- `sleep`: sleeps 30 s; `spin`: loops for ever.
- `memory`: holds 256 MiB.
"""

# Bundled so that a host name reaches the socket layer (and its refusal) rather than
# failing on a codec componentize-py left out.
import encodings.idna  # noqa: F401
import json
import os
import socket
import sys
import time
from typing import List

from wit_world import exports
from wit_world.imports import types

NAME = "py-sandbox"
VERSION = "0.1.0"


def _try(action) -> str:
    try:
        return f"ok: {action()!r}"[:200]
    except Exception as e:  # the refusal is what the test reads
        return f"{type(e).__name__}: {e}"[:200]


def _connect(port: int) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        s.connect(("127.0.0.1", port))
        return "connected"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read(10)


class FormatNotification(exports.FormatNotification):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name=NAME,
            version=VERSION,
            kind=types.PluginKind.NOTIFY_FORMATTER,
            description="a Python guest that tries the sandbox's walls",
        )

    def format(self, notification: types.Notification, channel: str) -> List[types.RenderedMessage]:
        text = notification.title
        if channel == "env":
            port = int(notification.body or "1")
            text = json.dumps(
                {
                    "environ": dict(os.environ),
                    "argv": sys.argv,
                    "cwd": _try(os.getcwd),
                    "listdir": _try(lambda: os.listdir("/")),
                    "open": _try(lambda: _read("/etc/passwd")),
                    "socket": _try(lambda: _connect(port)),
                }
            )
        elif channel == "print":
            print("formatted", notification.id, "for", channel)
            print("a warning from python", file=sys.stderr)
        elif channel == "slow":
            time.sleep(0.05)
        elif channel == "sleep":
            time.sleep(30)
        elif channel == "spin":
            while True:
                pass
        elif channel == "memory":
            hoard = bytearray(256 * 1024 * 1024)
            text = str(len(hoard))
        return [
            types.RenderedMessage(
                text=text, subject=None, html=None, parse_mode=types.ParseMode.PLAIN
            )
        ]
