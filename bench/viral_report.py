"""The viral table: ours and the seed at each watcher count, side by side, then the viral targets (docs/performance.md).

Every figure is the median over the runs; every ratio is taken within a
run (the same machine minute for both sides) and its median printed.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable

OURS, SEED = "tornado_petitions", "seed_fastapi"

ROWS = [
    ("watchers connected (public feed)", "watchers_ready", 0),
    ("anonymous public sockets", "anonymous", None),
    ("signatures/s (32 clients)", "rps", 0),
    ("sign p50, ms", "p50_ms", 1),
    ("sign p99, ms", "p99_ms", 1),
    ("count staleness p50 (201 to a probed watcher's counts frame), ms", "staleness_p50_ms", 0),
    ("count staleness p99, ms", "staleness_p99_ms", 0),
    ("count staleness on the author's channel (its update frames), p99 ms", "user_staleness_p99_ms", 0),
    ("frames per public watcher per second", "frames_per_public_socket_s", 2),
    ("bytes per public watcher per second", "bytes_per_public_socket_s", 0),
    ("frames per author's socket per second", "frames_per_user_socket_s", 2),
    ("bytes per author's socket per second", "bytes_per_user_socket_s", 0),
    ("frames per admin socket per second", "frames_per_admin_socket_s", 2),
    ("most counts frames on one socket", "counts_frames_max", 0),
    (
        "sockets over the counts budget (ceil(span / interval) + 1, flushes aside)",
        "counts_sockets_over_budget",
        0,
    ),
    ("sockets with two counts frames under 0.9 interval apart (jitter)", "counts_sockets_with_short_gap", 0),
    ("smallest gap between a socket's counts frames (flushes aside), ms", "counts_min_gap_ms", 0),
    ("sockets closed by the server", "closed", 0),
    ("status change: PATCH answered after, ms", "status_http_ms", 1),
    ("status change to the first public watcher (from its commit), ms", "status_public_first_ms", 1),
    ("status change to public watchers, p50 ms", "status_public_p50_ms", 1),
    ("status change to public watchers, p99 ms", "status_public_p99_ms", 1),
    ("status change to public watchers, last, ms", "status_public_max_ms", 1),
    ("status change to public watchers, p99 from the PATCH sent, ms", "status_public_from_send_p99_ms", 1),
    ("status change: public watchers that missed it", "status_public_missed", 0),
    ("status change to the author's 100 sockets, p99 ms", "status_user_p99_ms", 1),
    ("status change to the 10 admins, p99 ms", "status_admin_p99_ms", 1),
    ("server memory per socket, KB", "kb_per_socket", 1),
    ("server CPU share of its core", "server_cpu_share", 2),
    ("counts ticks' share of the server's CPU (the feeds' fan-out)", "tick_cpu_share", 3),
    ("feeds' count interval the fan-out budget chose, s", "count_interval_chosen", 2),
]


def _values(results: list[dict], match: Callable[[dict], bool], field: str) -> list:
    return [r[field] for r in results if match(r) and field in r and r[field] is not None]


def _median(results: list[dict], match: Callable[[dict], bool], field: str) -> float:
    values = [v for v in _values(results, match, field) if not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else math.nan


def _fmt(value: float, digits: int | None) -> str:
    if digits is None:
        return "-" if isinstance(value, float) and math.isnan(value) else ("yes" if value else "no")
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _per_run(results: list[dict], pick: Callable[[list[dict]], float]) -> float:
    """Median over runs of ``pick`` applied to one run's results."""
    runs = sorted({r["run"] for r in results})
    values = [pick([r for r in results if r["run"] == run]) for run in runs]
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def _one(run: list[dict], scenario: str, server: str, field: str, watchers: int | None = None) -> float:
    for r in run:
        if r["scenario"] == scenario and r["server"] == server and watchers in (None, r.get("watchers")):
            value = r.get(field)
            return math.nan if value is None else float(value)
    return math.nan


def viral_table(results: list[dict], args: argparse.Namespace) -> list[str]:
    """The Markdown lines of the viral section (empty when it did not run)."""
    viral = [r for r in results if r["scenario"] == "viral"]
    if not viral:
        return []
    columns = [
        (server, w) for server in (OURS, SEED) for w in args.watcher_counts
        if any(r["server"] == server and r["watchers"] == w for r in viral)
    ]  # fmt: skip
    head = [
        "measurement (median of runs)",
        *(f"{'ours' if s == OURS else 'seed'} W={w:,}" for s, w in columns),
    ]
    lines = [
        f"Viral petition: W public watchers + 100 on the author's channel + 10 admins; 32 clients sign "
        f"for {args.storm_seconds:g} s; an admin moves it to under_review half-way "
        f"(count interval {args.count_interval:g} s). The seed has no signatures endpoint and no admin "
        "channel: it holds the same sockets and delivers the same status change, idle.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for label, field, digits in ROWS:
        cells = [
            _fmt(_median(viral, lambda r, s=s, w=w: r["server"] == s and r["watchers"] == w, field), digits)
            for s, w in columns
        ]
        if any(c != "-" for c in cells):
            lines.append("| " + " | ".join([label, *cells]) + " |")
    lines += ["", *_floor(results, args), *_creates_and_resume(results, args), "", *targets(results, args)]
    return lines


def _floor(results: list[dict], args: argparse.Namespace) -> list[str]:
    """One change to the most watchers with no storm: ours and ``ws_broadcast --raw`` (one C-level write each)."""
    floor = [r for r in results if r["scenario"] == "viral_floor"]
    if not floor:
        return []
    top = max(args.watcher_counts)
    storm = _median(results, lambda r: r["scenario"] == "viral" and r["server"] == OURS and r["watchers"] == top,
                    "status_public_p99_ms")  # fmt: skip
    lines = [
        f"One status change to {top:,} idle sockets, no storm (3 changes, median; the fan-out floor), "
        f"against ours mid-storm ({_fmt(storm, 1)} ms p99):",
        "",
        "| server | last socket, ms | p99 of receives, ms | server CPU per socket, µs |",
        "|---|---|---|---|",
    ]
    for server in (OURS, "ws_broadcast --raw"):
        cells = [
            _fmt(_median(floor, lambda r, s=server: r["server"] == s, field), 1)
            for field in ("completion_ms", "receive_p99_ms", "server_cpu_us_per_socket")
        ]
        lines.append("| " + " | ".join([server, *cells]) + " |")
    return [*lines, ""]


def _creates_and_resume(results: list[dict], args: argparse.Namespace) -> list[str]:
    lines = []
    creates = [r for r in results if r["scenario"] == "viral_create"]
    if creates:
        lines += [
            f"| creates at {args.clients} clients (median of runs) | ours | seed | ours / seed |",
            "|---|---|---|---|",
        ]
        for label, field in (("requests/s", "rps"), ("p50, ms", "p50_ms"), ("p99, ms", "p99_ms")):
            ours = _median(creates, lambda r: r["server"] == OURS, field)
            seed = _median(creates, lambda r: r["server"] == SEED, field)
            ratio = _per_run(
                creates,
                lambda run, f=field: _one(run, "viral_create", OURS, f) / _one(run, "viral_create", SEED, f),
            )
            lines.append(f"| {label} | {_fmt(ours, 1)} | {_fmt(seed, 1)} | {_fmt(ratio, 2)}x |")
        lines.append("")
    resume = [r for r in results if r["scenario"] == "viral_resume"]
    if resume:
        count = resume[0]["signatures"]
        lines += [
            f"Resume after {count:,} signatures (10 petitions), {args.resume_repeats} connects each "
            "(median of runs):",
            "",
            "| connect with | connect to hello, median ms | p99 ms | frames before hello | bytes |",
            "|---|---|---|---|---|",
        ]
        for label, name in (
            ("no since", "none"),
            ("?since=0 (10 created events, then counts)", "0"),
            ("?since= before the million (counts only)", "before"),
            ("?since= the current seq", "now"),
        ):
            cells = [
                _fmt(_median(resume, lambda r: True, f"resume_{name}_{field}"), digits)
                for field, digits in (("median_ms", 1), ("p99_ms", 1), ("frames", 0), ("bytes", 0))
            ]
            lines.append("| " + " | ".join([label, *cells]) + " |")
    return lines


def targets(results: list[dict], args: argparse.Namespace) -> list[str]:
    """One line per viral target: the figure, the bound, met or not."""
    top = max(args.watcher_counts)
    low = min(args.watcher_counts)
    viral = [r for r in results if r["scenario"] == "viral"]

    def ours(field: str, watchers: int = top) -> float:
        return _median(viral, lambda r: r["server"] == OURS and r["watchers"] == watchers, field)

    def worst(field: str) -> float:
        values = _values(viral, lambda r: r["server"] == OURS, field)
        return max(values) if values else math.nan

    rate_ratio = _per_run(
        viral, lambda run: _one(run, "viral", OURS, "rps", top) / _one(run, "viral", OURS, "rps", low)
    )
    create_ratio = _per_run(
        results, lambda run: _one(run, "viral_create", OURS, "rps") / _one(run, "viral_create", SEED, "rps")
    )
    create_p99 = _median(results, lambda r: r["scenario"] == "viral_create" and r["server"] == OURS, "p99_ms")
    seed_p99 = _median(results, lambda r: r["scenario"] == "viral_create" and r["server"] == SEED, "p99_ms")
    # Staleness is bounded by the interval in use: the budget may stretch it past --count-interval.
    chosen = ours("count_interval_chosen")
    bound = (chosen if not math.isnan(chosen) else args.count_interval) * 1000 + 150
    checks = [
        (f"signatures/s at {top:,} watchers vs {low:,}", f"{rate_ratio:.2f}x", rate_ratio >= 0.8, ">= 0.8x"),
        (f"signatures/s at {top:,} watchers", f"{ours('rps'):,.0f}", ours("rps") >= 1000, ">= 1,000"),
        (f"count staleness p99 at {top:,}", f"{ours('staleness_p99_ms'):,.0f} ms", ours("staleness_p99_ms") <= bound,
         f"<= {bound:,.0f} ms"),
        ("sockets over the counts budget, worst run", f"{worst('counts_sockets_over_budget'):.0f}",
         worst("counts_sockets_over_budget") == 0, "0"),
        ("sockets closed by the server, worst run", f"{worst('closed'):.0f}", worst("closed") == 0, "0"),
        (f"status change to {top:,} watchers, p99 from its commit", f"{ours('status_public_p99_ms'):.1f} ms",
         ours("status_public_p99_ms") < 100 and worst("status_public_missed") == 0, "< 100 ms, none missed"),
        ("creates vs seed_fastapi", f"{create_ratio:.2f}x, p99 {create_p99:.1f} vs {seed_p99:.1f} ms",
         create_ratio >= 2 and create_p99 < seed_p99, ">= 2x, lower p99"),
        (f"memory per socket at {top:,} watchers", f"{ours('kb_per_socket'):.1f} KB", ours("kb_per_socket") < 15,
         "< 15 KB"),
    ]  # fmt: skip
    lines = ["| target (docs/performance.md#a-viral-petition) | figure | bound | met |", "|---|---|---|---|"]
    lines += [f"| {name} | {figure} | {bar} | {'yes' if ok else 'NO'} |" for name, figure, ok, bar in checks]
    runs = []
    for run in sorted({r["run"] for r in viral}):
        mine = [r for r in viral if r["run"] == run and r["server"] == OURS]
        cells = [
            f"{r['watchers']:,}: {r.get('rps', math.nan):,.0f}/s at {r['server_cpu_share']:.2f} CPU"
            + (
                f" (ticks {r['tick_cpu_share']:.2f} of it, interval {r['count_interval_chosen']:g} s)"
                if r.get("tick_cpu_share") is not None
                else ""
            )
            for r in sorted(mine, key=lambda r: r["watchers"])
        ]
        for r in results:
            if r["run"] == run and r["scenario"] == "viral_create":
                cells.append(f"creates {r['server']}: {r['rps']:,.0f}/s at {r['server_cpu_share']:.2f} CPU")
        runs.append(f"run {run} ({', '.join(cells)}; load {mine[-1]['loadavg_1m']:.1f})")
    lines += [
        "",
        "Per run, signatures/s by watchers (and creates) with the server's share of its core (below 0.95 "
        "on a closed loop, the core was shared with other work and that figure says so): "
        + "; ".join(runs)
        + ".",
    ]
    return lines
