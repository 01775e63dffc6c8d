// `{{name}}`: a scrape-parser plugin for ImpressoX Workers, written in JavaScript.
//
// It counts the captured responses and returns nothing yet: parse `capture.html` and the
// JSON bodies in `capture.responses` into tweets, profiles and cursors here. `throw
// "reason"` (a string) for a page it cannot read at all; the host keeps the capture.

import { log } from "impressox:plugin/log@0.1.0";

const NAME = "{{name}}";
const VERSION = "0.1.0";

export const parsePage = {
  info() {
    return { name: NAME, version: VERSION, kind: "scrape-parser", description: "counts captured responses" };
  },

  parse(capture) {
    let readable = 0;
    for (const response of capture.responses) {
      try {
        JSON.parse(response.body);
        readable += 1;
      } catch {
        // not JSON: skipped
      }
    }
    if (capture.responses.length > 0 && readable === 0) throw `${capture.url}: no captured response is JSON`;
    log("info", `${capture.url}: ${capture.responses.length} responses captured, ${readable} JSON`);
    return { tweets: [], profiles: [], cursors: [], rateLimits: [], accountSignal: "ok", skipped: [] };
  },
};
