"""`{{name}}`: a scrape-parser plugin for ImpressoX Workers, written in Python.

It counts the captured responses and returns nothing yet: parse `capture.html` and the
JSON bodies in `capture.responses` into tweets, profiles and cursors here. Raise
`Err("...")` for a page it cannot read at all; the host keeps the capture for a re-parse.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log, types

NAME = "{{name}}"
VERSION = "0.1.0"


class ParsePage(exports.ParsePage):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name=NAME,
            version=VERSION,
            kind=types.PluginKind.SCRAPE_PARSER,
            description="counts captured responses",
        )

    def parse(self, capture: types.PageCapture) -> types.ScrapeResult:
        readable = 0
        for response in capture.responses:
            try:
                json.loads(response.body)
                readable += 1
            except ValueError:
                pass
        if capture.responses and not readable:
            raise Err(f"{capture.url}: no captured response is JSON")
        log.log(
            log.Level.INFO,
            f"{capture.url}: {len(capture.responses)} responses captured, {readable} JSON",
        )
        return types.ScrapeResult(
            tweets=[],
            profiles=[],
            cursors=[],
            rate_limits=[],
            account_signal=types.AccountSignal.OK,
            skipped=[],
        )
