"""`rsi`: a rule processor in Python that alerts on the Relative Strength Index.

A rule with `"processor": "rsi"` watches RSI(14) of its symbol on one-minute closes (Wilder's
smoothing), where `threshold` watches the price. The rule's condition names an RSI level:

- `above` / `below`: RSI is above (overbought, e.g. 70) or below (oversold, e.g. 30) the level;
- `crosses_up` / `crosses_down`: RSI crossed the level since the previous close (e.g.
  `crosses_up` 30: leaving oversold).

The trigger modes are the host's: `once`, `every` (once per excursion; a crossing on every
crossing), `cooldown` (at most every `cooldown_secs`). Levels must lie between 0 and 100;
`pct_change` is refused, naming the rule.

Bars are one minute of tick time (`ts_ms`). A bar closes at its last tick when the first
tick of a later bar arrives; minutes without a tick repeat the last close. RSI needs 14
changes, so a symbol's first alert comes after 15 closes; the history lives in the
instance, so after a swap or a restart RSI warms up again (primed prices open the first
bar). Ticks older than the symbol's last tick are ignored.
"""

import math
from typing import Dict, List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

NAME = "rsi"
VERSION = "0.1.0"

PERIOD = 14
BAR_MS = 60_000
# Minutes without a tick filled in at most; more change nothing (flat bars scale gains and
# losses alike, so RSI stays where it was).
MAX_FILL = 10 * PERIOD

Op = types.ConditionOp
Mode = types.TriggerMode


class Series:
    """One symbol's one-minute bars and RSI."""

    def __init__(self, price: float, ts: int) -> None:
        self.bar = ts // BAR_MS
        # The open bar's latest price, and the close of the bar before it (the first bar
        # is measured from its first price).
        self.close = price
        self.last_close = price
        self.last_ts = ts
        self.changes = 0
        self.gain = 0.0
        self.loss = 0.0
        self.rsi: Optional[float] = None

    def close_bar(self) -> None:
        """Close the open bar at its latest price: Wilder's smoothing of gains and losses."""
        change = self.close - self.last_close
        gain, loss = max(change, 0.0), max(-change, 0.0)
        self.changes += 1
        if self.changes <= PERIOD:
            # The first average is the plain mean of the first PERIOD changes.
            self.gain += gain / PERIOD
            self.loss += loss / PERIOD
        else:
            self.gain = (self.gain * (PERIOD - 1) + gain) / PERIOD
            self.loss = (self.loss * (PERIOD - 1) + loss) / PERIOD
        if self.changes >= PERIOD:
            if self.loss == 0.0:
                self.rsi = 100.0 if self.gain > 0.0 else 50.0
            else:
                self.rsi = 100.0 - 100.0 / (1.0 + self.gain / self.loss)
        self.last_close = self.close


# rule id -> rule; symbol id -> ids of its rules; symbol id -> its series.
RULES: Dict[str, types.Rule] = {}
BY_SYMBOL: Dict[int, List[str]] = {}
SERIES: Dict[int, Series] = {}


def _reindex() -> None:
    BY_SYMBOL.clear()
    for rule in RULES.values():
        BY_SYMBOL.setdefault(rule.symbol_id, []).append(rule.id)


def _holds(op: types.ConditionOp, level: float, previous: Optional[float], rsi: float) -> bool:
    if op == Op.ABOVE:
        return rsi > level
    if op == Op.BELOW:
        return rsi < level
    if previous is None:
        return False
    if op == Op.CROSSES_UP:
        return previous <= level < rsi
    return previous >= level > rsi


WORDS = {
    Op.ABOVE: "is above",
    Op.BELOW: "is below",
    Op.CROSSES_UP: "crossed above",
    Op.CROSSES_DOWN: "crossed below",
}


def _step(
    rule: types.Rule,
    previous_rsi: Optional[float],
    rsi: float,
    close: float,
    previous_close: float,
    ts: int,
) -> Optional[types.Alert]:
    """Apply one closed bar to one rule; the alert if it fires."""
    state = rule.state
    mode = rule.trigger.mode
    level = rule.condition.value
    holds = _holds(rule.condition.op, level, previous_rsi, rsi)
    if mode == Mode.COOLDOWN:
        last = state.last_fired_ms
        if not holds or (last is not None and ts - last < rule.trigger.cooldown_secs * 1000):
            return None
    elif not holds:
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
    word = WORDS[rule.condition.op]
    return types.Alert(
        rule_id=rule.id,
        symbol_id=rule.symbol_id,
        price=close,
        reference_price=previous_close,
        fired_at_ms=ts,
        reason=f"{rule.symbol} RSI({PERIOD}) {word} {level:g} at {rsi:.1f} (1m closes)",
        state=types.RuleState(
            armed=state.armed,
            last_fired_ms=state.last_fired_ms,
            fired_count=state.fired_count,
        ),
    )


def _close_bars(sid: int, series: Series, new_bar: int, alerts: List[types.Alert]) -> None:
    """Close the series' open bar (and the skipped minutes), evaluating its rules."""
    rules = [RULES[i] for i in BY_SYMBOL.get(sid, ())]
    for _ in range(min(new_bar - series.bar, MAX_FILL)):
        previous_rsi, previous_close = series.rsi, series.last_close
        series.close_bar()
        if series.rsi is None:
            continue
        for rule in rules:
            alert = _step(
                rule, previous_rsi, series.rsi, series.close, previous_close, series.last_ts
            )
            if alert is not None:
                alerts.append(alert)
    series.bar = new_bar


class ProcessRules(exports.ProcessRules):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name=NAME,
            version=VERSION,
            kind=types.PluginKind.RULE_PROCESSOR,
            description="RSI(14) on one-minute closes: above, below and crossings of a level",
        )

    def upsert_rules(self, rules: List[types.Rule]) -> None:
        # Check every rule first, so a bad one changes nothing.
        for rule in rules:
            op, value = rule.condition.op, rule.condition.value
            if op == Op.PCT_CHANGE:
                raise Err(
                    f"rule {rule.id}: condition.op pct_change is not an RSI condition "
                    "(above, below, crosses_up, crosses_down)"
                )
            if not math.isfinite(value) or not 0.0 < value < 100.0:
                raise Err(f"rule {rule.id}: condition.value {value:g} is not an RSI level (0-100)")
        for rule in rules:
            RULES[rule.id] = rule
        _reindex()

    def remove_rules(self, ids: List[str]) -> None:
        for rule_id in ids:
            RULES.pop(rule_id, None)
        _reindex()

    def prime_prices(self, prices: List[Tuple[int, float, int]]) -> None:
        for sid, price, ts in prices:
            if sid not in SERIES and math.isfinite(price) and price > 0:
                SERIES[sid] = Series(price, ts)

    def evaluate(self, batch: types.TickBatch) -> List[types.Alert]:
        alerts: List[types.Alert] = []
        for sid, price, ts in zip(batch.symbol_ids, batch.prices, batch.ts_ms):
            if not math.isfinite(price) or price <= 0:
                continue
            series = SERIES.get(sid)
            if series is None:
                SERIES[sid] = Series(price, ts)
                continue
            if ts < series.last_ts:
                continue
            bar = ts // BAR_MS
            if bar > series.bar:
                _close_bars(sid, series, bar, alerts)
            series.close = price
            series.last_ts = ts
        return alerts

