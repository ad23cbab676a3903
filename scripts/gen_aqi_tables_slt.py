#!/usr/bin/env python3
"""Writes tests/slt/aqi_tables.slt: the HJ 633 breakpoint tables, both versions.

An independent oracle for `iaqi_cn`: the tables of docs/standards.md §1 typed again,
exact arithmetic with fractions.Fraction and decimal.Decimal (GB/T 8170
half-even rounding for 2026). For every pollutant and period: every
breakpoint, one value inside each segment, just above each breakpoint, the
2026 half-even cases, the > 800 rules, above the table, 0, negative, NULL —
each as a DOUBLE and as a DECIMAL, which must agree.

Run: python3 scripts/gen_aqi_tables_slt.py > tests/slt/aqi_tables.slt
"""
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
import math

IAQI = [0, 50, 100, 150, 200, 300, 400, 500]
# (pollutant, period) -> {standard: breakpoints}; both standards share a row unless given twice
TABLES = {
    ("so2", "24h"): [0, 50, 150, 475, 800, 1600, 2100, 2620],
    ("so2", "1h"): [0, 150, 500, 650, 800],
    ("no2", "24h"): [0, 40, 80, 180, 280, 565, 750, 940],
    ("no2", "1h"): [0, 100, 200, 700, 1200, 2340, 3090, 3840],
    ("co", "24h"): [0, 2, 4, 14, 24, 36, 48, 60],
    ("co", "1h"): [0, 5, 10, 35, 60, 90, 120, 150],
    ("o3", "1h"): [0, 160, 200, 300, 400, 800, 1000, 1200],
    ("o3", "8h"): [0, 100, 160, 215, 265, 800],
    ("pm10", "24h"): {"2012": [0, 50, 150, 250, 350, 420, 500, 600], "2026": [0, 50, 120, 250, 350, 420, 500, 600]},
    ("pm25", "24h"): {"2012": [0, 35, 75, 115, 150, 250, 350, 500], "2026": [0, 35, 60, 115, 150, 250, 350, 500]},
}
# PM has no 1h table: the real-time report uses the 24h breakpoints
TABLES[("pm10", "1h")] = TABLES[("pm10", "24h")]
TABLES[("pm25", "1h")] = TABLES[("pm25", "24h")]
# above the last breakpoint of a short table
BEYOND = {("so2", "1h"): {"2012": None, "2026": 200}, ("o3", "8h"): {"2012": None, "2026": 300}}


def breakpoints(pollutant, period, std):
    t = TABLES[(pollutant, period)]
    return t[std] if isinstance(t, dict) else t


def iaqi(pollutant, period, std, text):
    """The IAQI of a concentration given as decimal text, or None."""
    c = Decimal(text)
    if c < 0:
        return None
    if std == "2026":
        c = c.quantize(Decimal("0.1") if pollutant == "co" else Decimal("1"), rounding=ROUND_HALF_EVEN)
    c = Fraction(c)
    bp = breakpoints(pollutant, period, std)
    for i in range(1, len(bp)):
        if c <= bp[i]:
            step = Fraction(IAQI[i] - IAQI[i - 1]) * (c - bp[i - 1]) / (bp[i] - bp[i - 1])
            return IAQI[i - 1] + math.ceil(step)
    return BEYOND.get((pollutant, period), {}).get(std, 500)


def fmt(x):
    s = format(Decimal(x).normalize(), "f")
    return s


def cases(pollutant, period, std):
    bp = breakpoints(pollutant, period, std)
    fine = Fraction(1, 10) if pollutant == "co" else Fraction(1)
    out = ["0"]
    for lo, hi in zip(bp, bp[1:]):
        out.append(fmt(hi))  # exactly on a breakpoint: the lower segment's top
        inside = Fraction(lo) + Fraction(hi - lo) * Fraction(37, 100)
        out.append(fmt(Decimal(inside.numerator) / Decimal(inside.denominator)).split(".")[0] + ".3")
        out.append(fmt(Decimal(hi) + Decimal("0.1")))  # just above a breakpoint
        if std == "2026":
            # GB/T 8170 half-even at the breakpoint: x.5 rounds to the even neighbour
            half = Decimal(hi) + (Decimal("0.05") if pollutant == "co" else Decimal("0.5"))
            out.append(fmt(half))
            out.append(fmt(Decimal(hi) - (Decimal("0.05") if pollutant == "co" else Decimal("0.5"))))
    out.append(fmt(Decimal(bp[-1]) + 1))  # above the table
    out.append("-1")
    seen = []
    for c in out:
        if c not in seen:
            seen.append(c)
    return seen


def main():
    print("# The HJ 633 breakpoint tables, both versions: written by scripts/gen_aqi_tables_slt.py")
    print("# from its own copy of docs/standards.md §1 and exact arithmetic. Each concentration is given as a")
    print("# DOUBLE and as a DECIMAL; both must give the standard's IAQI.")
    for (pollutant, period) in TABLES:
        for std in ("2012", "2026"):
            name = f"HJ633-{std}"
            rows = cases(pollutant, period, std)
            print()
            print(f"# {pollutant} {period}, {name}: {', '.join(map(str, breakpoints(pollutant, period, std)))}")
            print("query TII rowsort")
            values = ", ".join(f"('{c}', {c})" for c in rows)
            print(f"SELECT c, iaqi_cn('{pollutant}', '{period}', x, '{name}'), "
                  f"iaqi_cn('{pollutant}', '{period}', CAST(c AS DECIMAL(12, 3)), '{name}')")
            print(f"FROM (VALUES {values}, (NULL, NULL)) AS t(c, x)")
            print("----")
            lines = []
            for c in rows:
                v = iaqi(pollutant, period, std, c)
                v = "NULL" if v is None else str(v)
                lines.append(f"{c} {v} {v}")
            lines.append("NULL NULL NULL")
            for line in sorted(lines):
                print(line)


if __name__ == "__main__":
    main()
