"""The Markdown table: medians over the runs of each measurement, and ratios taken in the same runs."""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable

from .viral_report import viral_table

OURS = "tornado_petitions"
PEERS = ("seed_fastapi", "ws_broadcast", "ws_broadcast --raw", "socketio_node")


def _median(results: list[dict], match: Callable[[dict], bool], field: str) -> float:
    values = [r[field] for r in results if match(r) and field in r]
    return statistics.median(values) if values else math.nan


def _fmt(value: float, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(ours: float, theirs: float) -> str:
    if math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}x"


def table(results: list[dict], args: argparse.Namespace) -> str:
    """The table of docs/performance.md: one row per measurement, one column per server, then our ratios."""
    servers = [OURS, *(p for p in PEERS if any(r["server"] == p for r in results))]
    head = ["measurement (median of runs)", *servers, *(f"ours / {p}" for p in servers[1:])]
    rows: list[list[str]] = []

    def row(label: str, match: Callable[[str], Callable[[dict], bool]], field: str, digits: int = 1) -> None:
        values = [_median(results, match(s), field) for s in servers]
        if all(math.isnan(v) for v in values):
            return
        rows.append([label, *(_fmt(v, digits) for v in values), *(_ratio(values[0], v) for v in values[1:])])

    for size in args.sizes:

        def fan(server: str, size: int = size) -> Callable[[dict], bool]:
            return lambda r: (
                r["scenario"] == "fanout" and r["server"] == server and r["sockets"] >= size * 0.99
                and r["sockets"] <= size and not r["deflate"]
            )  # fmt: skip

        row(f"fan-out to {size:,} sockets: last socket, ms", fan, "completion_ms")
        row(f"fan-out to {size:,}: p50 of all receives, ms", fan, "receive_p50_ms")
        row(f"fan-out to {size:,}: p99 of all receives, ms", fan, "receive_p99_ms")
        row(f"fan-out to {size:,}: server CPU per socket, µs", fan, "server_cpu_us_per_socket")
    size = args.sizes[-1]

    def memory(server: str) -> Callable[[dict], bool]:
        return lambda r: r["scenario"] == "fanout" and r["server"] == server and r["sockets"] == size

    row(f"memory per idle socket at {size:,}, KB", memory, "kb_per_socket")

    def deflate(server: str) -> Callable[[dict], bool]:
        return lambda r: r["scenario"] == "fanout" and r["server"] == server and r["deflate"]

    row(f"fan-out to {args.sizes[0]:,}, permessage-deflate: last socket, ms", deflate, "completion_ms")
    for kind, label in (("create", "create petitions"), ("list", "public list")):

        def load(server: str, kind: str = kind) -> Callable[[dict], bool]:
            return lambda r: r["scenario"] == "http" and r["server"] == server and r["kind"] == kind

        row(f"HTTP {label}, {args.clients} clients: requests/s", load, "rps", 0)
        row(f"HTTP {label}: p50 latency, ms", load, "p50_ms", 2)
        row(f"HTTP {label}: p99 latency, ms", load, "p99_ms", 2)
        row(f"HTTP {label}: requests/s in the last 2 s", load, "rps_last_2s", 0)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] if rows else []
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    lines += _delivery(results, args)
    viral = viral_table(results, args)
    if viral:
        lines += ["", *viral]
    return "\n".join(lines)


def _delivery(results: list[dict], args: argparse.Namespace) -> list[str]:
    variants = sorted({r["server"] for r in results if r["scenario"] == "delivery_under_load"})
    if not variants:
        return []
    fields = [
        ("events delivered", "events", 0),
        ("create requests/s meanwhile", "create_rps", 0),
        ("create p99, ms", "create_p99_ms", 1),
        ("commit to receive, p50 ms", "receive_p50_ms", 1),
        ("commit to receive, p99 ms", "receive_p99_ms", 1),
        ("commit to the slowest probed socket, p99 of events, ms", "slowest_probe_p99_ms", 1),
        ("server CPU share of its core", "server_cpu_share", 2),
    ]
    lines = [
        f"Delivery under load: {args.load_sockets:,} feed sockets while {args.clients} clients file petitions",
        "",
        "| " + " | ".join(["measurement (median of runs)", *variants]) + " |",
        "|" + "---|" * (len(variants) + 1),
    ]
    for label, field, digits in fields:
        values = [
            _fmt(
                _median(
                    results, lambda r, v=v: r["server"] == v and r["scenario"] == "delivery_under_load", field
                ),
                digits,
            )
            for v in variants
        ]
        lines.append("| " + " | ".join([label, *values]) + " |")
    return lines
