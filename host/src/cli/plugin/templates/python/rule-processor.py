"""`{{name}}`: a rule-processor plugin for ImpressoX Workers, written in Python.

It fires `above` and `below` rules (price levels) with the host's trigger modes: `once`
fires the first time, `every` once per excursion past the level, `cooldown` at most every
`cooldown_secs`. Other conditions are refused by `upsert_rules`, naming the rule.

Rules live in module globals: an instance serves one processor, and the host hands a fresh
instance every rule it owns (with its persisted state) before its first batch.
"""

from typing import Dict, List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

NAME = "{{name}}"
VERSION = "0.1.0"

Op = types.ConditionOp
Mode = types.TriggerMode

# rule id -> rule, and symbol id -> the ids of its rules.
RULES: Dict[str, types.Rule] = {}
BY_SYMBOL: Dict[int, List[str]] = {}


def _index() -> None:
    BY_SYMBOL.clear()
    for rule in RULES.values():
        BY_SYMBOL.setdefault(rule.symbol_id, []).append(rule.id)


def _holds(rule: types.Rule, price: float) -> bool:
    if rule.condition.op == Op.ABOVE:
        return price > rule.condition.value
    return price < rule.condition.value


def _step(rule: types.Rule, price: float, ts: int) -> Optional[types.Alert]:
    """Apply one tick to one rule; the alert if it fires."""
    state = rule.state
    mode = rule.trigger.mode
    holds = _holds(rule, price)
    if mode == Mode.COOLDOWN:
        last = state.last_fired_ms
        if not holds or (last is not None and ts - last < rule.trigger.cooldown_secs * 1000):
            return None
    elif not holds:
        # An `every` rule re-arms once its condition is false again.
        if mode == Mode.EVERY:
            state.armed = True
        return None
    elif not state.armed:
        return None
    if rule.expires_at_ms is not None and ts >= rule.expires_at_ms:
        return None
    state.armed = mode == Mode.COOLDOWN
    state.last_fired_ms = ts
    state.fired_count += 1
    word = "above" if rule.condition.op == Op.ABOVE else "below"
    return types.Alert(
        rule_id=rule.id,
        symbol_id=rule.symbol_id,
        price=price,
        reference_price=None,
        fired_at_ms=ts,
        reason=f"{rule.symbol} is {word} {rule.condition.value:g} at {price:g}",
        state=types.RuleState(
            armed=state.armed,
            last_fired_ms=state.last_fired_ms,
            fired_count=state.fired_count,
        ),
    )


class ProcessRules(exports.ProcessRules):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name=NAME,
            version=VERSION,
            kind=types.PluginKind.RULE_PROCESSOR,
            description="fires above/below price levels",
        )

    def upsert_rules(self, rules: List[types.Rule]) -> None:
        # Check every rule first, so a bad one changes nothing.
        for rule in rules:
            if rule.condition.op not in (Op.ABOVE, Op.BELOW):
                raise Err(f"rule {rule.id}: condition.op must be above or below")
        for rule in rules:
            RULES[rule.id] = rule
        _index()

    def remove_rules(self, ids: List[str]) -> None:
        for rule_id in ids:
            RULES.pop(rule_id, None)
        _index()

    def prime_prices(self, prices: List[Tuple[int, float, int]]) -> None:
        # Levels need no previous price; a crossing rule would keep these.
        pass

    def evaluate(self, batch: types.TickBatch) -> List[types.Alert]:
        alerts: List[types.Alert] = []
        for symbol_id, price, ts in zip(batch.symbol_ids, batch.prices, batch.ts_ms):
            for rule_id in BY_SYMBOL.get(symbol_id, ()):
                alert = _step(RULES[rule_id], price, ts)
                if alert is not None:
                    alerts.append(alert)
        return alerts
