// `{{name}}`: a feed-parser plugin for ImpressoX Workers, written in JavaScript.
//
// It reads payloads of the form `SYMBOL PRICE` (e.g. `BTCUSDT 70123.4`). Replace `parse`
// with the format of your feed; `throw "reason"` (a string) for a payload it cannot read:
// the host counts and logs it and the source keeps running.

const NAME = "{{name}}";
const VERSION = "0.1.0";

const decoder = new TextDecoder("utf-8", { fatal: true });

export const parseFeed = {
  info() {
    return { name: NAME, version: VERSION, kind: "feed-parser", description: "parses `SYMBOL PRICE` lines" };
  },

  // Feeds that subscribe through their URL send nothing after connecting.
  subscribeMessage(_request) {
    return undefined;
  },

  // `payload` is a Uint8Array; `receivedMs` and every s64 are BigInts.
  parse(payload, receivedMs) {
    let text;
    try {
      text = decoder.decode(payload);
    } catch {
      throw "payload is not UTF-8";
    }
    const ticks = [];
    for (const line of text.split("\n")) {
      const parts = line.trim().split(/\s+/).filter(Boolean);
      if (parts.length === 0) continue;
      if (parts.length !== 2) throw `expected \`SYMBOL PRICE\`, got ${JSON.stringify(line.slice(0, 80))}`;
      const price = Number(parts[1]);
      if (!Number.isFinite(price) || price <= 0) throw `price ${JSON.stringify(parts[1].slice(0, 40))} is not a positive number`;
      ticks.push({ symbol: parts[0].toUpperCase(), price, tsMs: receivedMs, volume: undefined, bid: undefined, ask: undefined });
    }
    return { ticks, heartbeat: ticks.length === 0 };
  },
};
