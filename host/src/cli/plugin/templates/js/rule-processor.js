// `{{name}}`: a rule-processor plugin for ImpressoX Workers, written in JavaScript.
//
// It fires `above` and `below` rules (price levels) with the host's trigger modes: `once`
// fires the first time, `every` once per excursion past the level, `cooldown` at most every
// `cooldownSecs`. Other conditions are refused by `upsertRules`, naming the rule.
//
// Rules live in module state: an instance serves one processor, and the host hands a fresh
// instance every rule it owns (with its persisted state) before its first batch.
// Times (`tsMs`, `lastFiredMs`, `expiresAtMs`, `firedAtMs`) are BigInts.

const NAME = "{{name}}";
const VERSION = "0.1.0";

/** rule id -> rule, and symbol id -> its rules. */
const rules = new Map();
let bySymbol = new Map();

function reindex() {
  bySymbol = new Map();
  for (const rule of rules.values()) {
    const list = bySymbol.get(rule.symbolId) ?? [];
    list.push(rule);
    bySymbol.set(rule.symbolId, list);
  }
}

function holds(rule, price) {
  return rule.condition.op === "above" ? price > rule.condition.value : price < rule.condition.value;
}

/** Apply one tick to one rule; the alert if it fires. */
function step(rule, price, ts) {
  const state = rule.state;
  const mode = rule.trigger.mode;
  const now = holds(rule, price);
  if (mode === "cooldown") {
    const last = state.lastFiredMs;
    if (!now || (last !== undefined && ts - last < BigInt(rule.trigger.cooldownSecs) * 1000n)) return undefined;
  } else if (!now) {
    // An `every` rule re-arms once its condition is false again.
    if (mode === "every") state.armed = true;
    return undefined;
  } else if (!state.armed) {
    return undefined;
  }
  if (rule.expiresAtMs !== undefined && ts >= rule.expiresAtMs) return undefined;
  state.armed = mode === "cooldown";
  state.lastFiredMs = ts;
  state.firedCount += 1;
  return {
    ruleId: rule.id,
    symbolId: rule.symbolId,
    price,
    referencePrice: undefined,
    firedAtMs: ts,
    reason: `${rule.symbol} is ${rule.condition.op} ${rule.condition.value} at ${price}`,
    state: { armed: state.armed, lastFiredMs: state.lastFiredMs, firedCount: state.firedCount },
  };
}

export const processRules = {
  info() {
    return { name: NAME, version: VERSION, kind: "rule-processor", description: "fires above/below price levels" };
  },

  upsertRules(list) {
    // Check every rule first, so a bad one changes nothing.
    for (const rule of list) {
      if (rule.condition.op !== "above" && rule.condition.op !== "below") {
        throw `rule ${rule.id}: condition.op must be above or below`;
      }
    }
    for (const rule of list) rules.set(rule.id, rule);
    reindex();
  },

  removeRules(ids) {
    for (const id of ids) rules.delete(id);
    reindex();
  },

  // Levels need no previous price; a crossing rule would keep these.
  primePrices(_prices) {},

  // The batch comes in columns: entry i of each list is tick i.
  evaluate(batch) {
    const alerts = [];
    for (let i = 0; i < batch.symbolIds.length; i++) {
      for (const rule of bySymbol.get(batch.symbolIds[i]) ?? []) {
        const alert = step(rule, batch.prices[i], batch.tsMs[i]);
        if (alert) alerts.push(alert);
      }
    }
    return alerts;
  },
};
