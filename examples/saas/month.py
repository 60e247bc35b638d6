#!/usr/bin/env python3
"""Writes a month of Cloudline's measurements as CSV for `accord report`.

    python3 examples/saas/month.py > month.csv

The 33 days up to the start of the current hour (UTC), so that every row is
recent enough for the server to accept (by default it refuses measurements
older than 35 days): hourly request counts for checkout, search, reporting
and checkout's database, hourly p99 latency samples for checkout, a
50-minute outage on the last day of the previous month (the hosting
supplier's, so it counts against the hosting contract too), the month's
qualified leads and daily lead follow-up times. Each value comes from a
generator seeded with its series and hour, and each id names both: run it
again later and the rows both runs share are identical, so reporting the
new file counts them as duplicates, never twice.
"""

import csv
import random
import sys
from datetime import datetime, timedelta, timezone

COLUMNS = ["id", "service", "consumer", "indicator", "time", "good", "total",
           "value", "start_time", "end_time"]


def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def rng(series, t):
    return random.Random(f"{series}/{stamp(t)}")


def main(out):
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    # 33 days: the last day of the previous month is always in (it is at
    # most 31 days and 11 hours back), and the server's default limit (35
    # days) still takes the oldest row.
    start = end - timedelta(days=33)
    first_of_month = end.replace(day=1, hour=0)
    outage_start = first_of_month - timedelta(hours=10, minutes=50)  # last day, 13:10
    outage_end = outage_start + timedelta(minutes=50)

    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)

    def counts(series, service, indicator, t, total, error_rate):
        r = rng(series, t)
        n = int(total * r.uniform(0.8, 1.2))
        bad = int(n * error_rate * r.uniform(0.2, 1.8))
        if t < outage_end and t + timedelta(hours=1) > outage_start:
            bad = n // 4
        w.writerow([f"{series}-{stamp(t)}", service, "", indicator, stamp(t),
                    n - bad, n, "", "", ""])

    t = start
    while t < end:
        counts("checkout-req", "checkout", "http_success", t, 12000, 0.0003)
        counts("search-req", "search", "http_success", t, 30000, 0.002)
        counts("reporting-req", "reporting", "http_success", t, 800, 0.004)
        counts("checkout-db", "checkout", "db_query_success", t, 50000, 0.0002)
        r = rng("checkout-p99", t)
        latency = round(r.gauss(210, 35), 1)
        if outage_start - timedelta(hours=1) <= t <= outage_end:
            latency = 950.0
        w.writerow([f"checkout-p99-{stamp(t)}", "checkout", "", "p99_latency_ms",
                    stamp(t), "", "", latency, "", ""])
        if t.hour == 9:
            r = rng("follow-up", t)
            w.writerow([f"follow-up-{stamp(t)}", "lead-handoff", "sales",
                        "lead_follow_up_hours", stamp(t), "", "", round(r.uniform(1, 27), 1),
                        "", ""])
        t += timedelta(hours=1)

    for series, indicator in [("checkout-outage", "downtime"),
                              ("hosting-outage", "hosting_downtime")]:
        w.writerow([f"{series}-{stamp(outage_start)}", "checkout", "", indicator, "", "", "",
                    "", stamp(outage_start), stamp(outage_end)])
    # The month before this one, counted on its last day.
    last_day = first_of_month - timedelta(hours=12)
    w.writerow([f"qualified-leads-{stamp(last_day)}", "lead-handoff", "sales",
                "qualified_leads", stamp(last_day), "", "", 452, "", ""])


if __name__ == "__main__":
    main(sys.stdout)
