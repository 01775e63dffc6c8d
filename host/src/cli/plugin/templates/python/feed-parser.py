"""`{{name}}`: a feed-parser plugin for ImpressoX Workers, written in Python.

It reads payloads of the form `SYMBOL PRICE` (e.g. `BTCUSDT 70123.4`). Replace `parse` with
the format of your feed; raise `Err("...")` for a payload it cannot read: the host counts
and logs it and the source keeps running.
"""

import math
from typing import List, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

NAME = "{{name}}"
VERSION = "0.1.0"


class ParseFeed(exports.ParseFeed):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name=NAME,
            version=VERSION,
            kind=types.PluginKind.FEED_PARSER,
            description="parses `SYMBOL PRICE` lines",
        )

    def subscribe_message(self, request: types.SubscribeRequest) -> Optional[str]:
        # Feeds that subscribe through their URL send nothing after connecting.
        return None

    def parse(self, payload: bytes, received_ms: int) -> types.ParsedPayload:
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise Err("payload is not UTF-8")
        ticks: List[types.PriceTick] = []
        for line in text.splitlines():
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise Err(f"expected `SYMBOL PRICE`, got {line[:80]!r}")
            try:
                price = float(parts[1])
            except ValueError:
                raise Err(f"price {parts[1][:40]!r} is not a number")
            if not math.isfinite(price) or price <= 0:
                raise Err(f"price {parts[1][:40]!r} is not a positive number")
            ticks.append(
                types.PriceTick(
                    symbol=parts[0].upper(),
                    price=price,
                    ts_ms=received_ms,
                    volume=None,
                    bid=None,
                    ask=None,
                )
            )
        return types.ParsedPayload(ticks=ticks, heartbeat=not ticks)
