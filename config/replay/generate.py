#!/usr/bin/env python3
"""Writes demo-prices.csv, the price file of the market monitor demo (replay-rows CSV).

Five minutes of market time from ts_ms 1764300000000 (2025-11-28T03:20:00Z) for BTCUSDT,
ETHUSDT and SOLUSDT, one row per symbol about every 250 ms (jittered 180-320 ms), as
`ts_ms,symbol,price,volume` after a header line, rows sorted by time.

Each price is a planned path (a few keypoints joined by smooth steps in log price) times a
mean-reverting geometric random walk (Ornstein-Uhlenbeck in log price, realistic intraday
volatility, 30 s reversion). The plan gives the demo moves that rules can be written
against; the walk makes the ticks look like a market. The pull back to the plan keeps the
moves near their planned seconds and lets each crossing happen once instead of flapping
around the level. The seed is fixed, so a re-run writes the same file byte for byte; the
script checks the facts below after generating and fails if a change breaks them.

Facts of the generated file (seconds after the start, rule semantics of the `threshold`
plugin: crosses-up is prev <= value < cur on consecutive ticks of the symbol; pct-change
compares with the oldest price in [ts - window, ts]):
- BTCUSDT (1203 rows): starts 96,081.73, ends 96,273.23, high 97,396.89 at 146.1 s.
  Crosses UP through 96,500 at 88.1 s (ts_ms 1764300088141) and UP through 97,000 at
  98.8 s (ts_ms 1764300098824); crosses DOWN through 97,000 at 234.1 s
  (ts_ms 1764300234086) and DOWN through 96,500 at 252.1 s (ts_ms 1764300252137).
  Each level is crossed exactly once each way. Largest 60 s rise +1.20% (139.2 s),
  largest 60 s fall -0.92% (267.6 s).
- ETHUSDT (1205 rows): starts 3,612.06, ends 3,524.98, low 3,523.73. Crosses DOWN through
  3,550 once, at 147.0 s (ts_ms 1764300147038), and stays below it. Largest 60 s fall
  -2.08% (161.9 s), largest 60 s rise +0.36%.
- SOLUSDT (1199 rows): starts 240.207, ends 243.473, high 244.626 at 214.3 s. Up >= 2%
  within 60 s first at 205.7 s (ts_ms 1764300205735; +2.04% from 238.869 at 145.8 s),
  largest 60 s rise +2.47% at 214.1 s; no 60 s rise reaches 1% outside 190-260 s;
  largest 60 s fall -0.37%.

Run: python3 config/replay/generate.py   (Python 3 standard library only)
"""

import math
import os
import random

SEED = 20251128
START_MS = 1764300000000
DURATION_MS = 5 * 60 * 1000
STEP_MS = 250
JITTER_MS = 70
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo-prices.csv")

# Annualized volatility of the walk; per step it is vol * sqrt(dt / year).
YEAR_S = 365 * 24 * 3600
REVERSION_S = 30.0

# symbol: (decimals, annual vol, typical row volume, first-row offset ms, plan keypoints)
SYMBOLS = {
    "BTCUSDT": (
        2,
        0.60,
        0.04,
        0,
        [(0, 96080), (60, 96160), (78, 96260), (108, 97260), (150, 97360),
         (205, 97230), (222, 97160), (262, 96340), (300, 96290)],
    ),
    "ETHUSDT": (
        2,
        0.75,
        0.6,
        83,
        [(0, 3612), (100, 3599), (125, 3591), (165, 3528), (230, 3536), (300, 3522)],
    ),
    "SOLUSDT": (
        3,
        0.90,
        8.0,
        167,
        [(0, 240.2), (90, 239.6), (170, 238.9), (180, 238.9), (214, 244.6),
         (240, 244.0), (300, 243.2)],
    ),
}


def smoothstep(x):
    return x * x * (3 - 2 * x)


def plan(keypoints, t_s):
    """The planned price at t_s: smooth steps in log price between keypoints."""
    for (t0, p0), (t1, p1) in zip(keypoints, keypoints[1:]):
        if t_s <= t1:
            u = smoothstep(min(max((t_s - t0) / (t1 - t0), 0.0), 1.0))
            return math.exp(math.log(p0) + (math.log(p1) - math.log(p0)) * u)
    return keypoints[-1][1]


def generate():
    rng = random.Random(SEED)
    rows = []
    for order, (symbol, (decimals, vol, size, offset, keypoints)) in enumerate(SYMBOLS.items()):
        x = 0.0  # log deviation from the plan
        ts = START_MS + offset
        prev_plan = plan(keypoints, 0)
        while ts < START_MS + DURATION_MS:
            t_s = (ts - START_MS) / 1000
            dt = STEP_MS / 1000
            x = x * (1 - dt / REVERSION_S) + vol * math.sqrt(dt / YEAR_S) * rng.gauss(0, 1)
            p = plan(keypoints, t_s)
            price = round(p * math.exp(x), decimals)
            # Volume: lognormal row sizes, heavier while the plan moves (as on real books).
            speed = abs(math.log(p / prev_plan)) / dt * 1e4  # bp per second of the plan
            prev_plan = p
            volume = size * math.exp(rng.gauss(0, 0.8)) * (1 + 0.5 * speed)
            volume = max(round(volume, 4), 0.0001)
            rows.append((ts, order, symbol, price, decimals, volume))
            ts += STEP_MS + rng.randint(-JITTER_MS, JITTER_MS)
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


def write(rows):
    with open(OUT, "w", newline="\n") as f:
        f.write("ts_ms,symbol,price,volume\n")
        for ts, _, symbol, price, decimals, volume in rows:
            f.write(f"{ts},{symbol},{price:.{decimals}f},{volume:.4f}\n")


def crossings(series, value):
    """(ts, 'up'|'down') with the threshold plugin's semantics."""
    out = []
    for (_, prev), (ts, cur) in zip(series, series[1:]):
        if prev <= value < cur:
            out.append((ts, "up"))
        elif prev >= value > cur:
            out.append((ts, "down"))
    return out


def pct_up(series, window_ms):
    """(ts, change %, reference ts, reference price) against the oldest price in the window."""
    out = []
    j = 0
    for ts, cur in series:
        while series[j][0] < ts - window_ms:
            j += 1
        ref_ts, ref = series[j]
        out.append((ts, (cur - ref) / ref * 100, ref_ts, ref))
    return out


def secs(ts):
    return f"{(ts - START_MS) / 1000:.1f} s (ts_ms {ts})"


def report_and_check(rows):
    by = {s: [(r[0], r[3]) for r in rows if r[2] == s] for s in SYMBOLS}
    btc, eth, sol = by["BTCUSDT"], by["ETHUSDT"], by["SOLUSDT"]
    for s, series in by.items():
        prices = [p for _, p in series]
        hi = max(series, key=lambda r: r[1])
        print(f"{s}: {len(series)} rows, first {prices[0]}, last {prices[-1]}, "
              f"min {min(prices)}, max {hi[1]} at {secs(hi[0])}")

    facts = {
        ("BTCUSDT", 97000): crossings(btc, 97000),
        ("BTCUSDT", 96500): crossings(btc, 96500),
        ("ETHUSDT", 3550): crossings(eth, 3550),
    }
    for (s, v), cs in facts.items():
        for ts, d in cs:
            print(f"{s} crosses {d} {v} at {secs(ts)}")

    sol_pct = pct_up(sol, 60_000)
    first = next(r for r in sol_pct if r[1] >= 2.0)
    best = max(sol_pct, key=lambda r: r[1])
    print(f"SOLUSDT up >= 2% in 60 s first at {secs(first[0])}: +{first[1]:.2f}% "
          f"from {first[3]} at {secs(first[2])}")
    print(f"SOLUSDT largest 60 s rise +{best[1]:.2f}% at {secs(best[0])}")
    for s, series in by.items():
        changes = pct_up(series, 60_000)
        up = max(changes, key=lambda r: r[1])
        down = min(changes, key=lambda r: r[1])
        print(f"{s} 60 s window: largest rise {up[1]:+.2f}% at {secs(up[0])}, "
              f"largest fall {down[1]:+.2f}% at {secs(down[0])}")
    outside = [r for r in sol_pct if r[1] >= 1.0 and not 190_000 <= r[0] - START_MS <= 260_000]
    size = os.path.getsize(OUT)
    print(f"{len(rows)} rows, {size} bytes -> {OUT}")

    # The demo rules are chosen from these facts: fail loudly if a change breaks them.
    def one_each(cs, up_window, down_window):
        """Exactly one crossing up (or none if up_window is None) and one down, in order."""
        want = ([("up", up_window)] if up_window else []) + [("down", down_window)]
        return len(cs) == len(want) and all(
            d == w and lo <= (ts - START_MS) / 1000 <= hi
            for (ts, d), (w, (lo, hi)) in zip(cs, want)
        )

    assert one_each(facts[("BTCUSDT", 97000)], (85, 115), (200, 260)), facts[("BTCUSDT", 97000)]
    assert one_each(facts[("BTCUSDT", 96500)], (60, 100), (230, 290)), facts[("BTCUSDT", 96500)]
    assert one_each(facts[("ETHUSDT", 3550)], None, (130, 170)), facts[("ETHUSDT", 3550)]
    assert 180 <= (first[0] - START_MS) / 1000 <= 230, first
    assert not outside, outside[:3]
    assert size < 300_000, size


if __name__ == "__main__":
    rows = generate()
    write(rows)
    report_and_check(rows)
