"""Fan-out to 5,000 sockets held by one server process vs split over two (PostgreSQL + Redis).

    .venv/bin/python -m bench.scale_out [--sockets 5000] [--clients 4] [--paced 50] [--burst 100]

For each layout (1 process, 2 processes) it starts ``serve`` processes on a
fresh PostgreSQL database and a Redis channel of their own, spreads the
sockets over them from ``--clients`` client processes (``websockets``
clients on the public feed), then writes through process A only:

* paced: ``--paced`` signatures at ``--rate`` per second; the figure is the
  latency from sending the HTTP request to each socket receiving the event
  (every socket, every event), so it includes the commit and, for sockets
  on B, the hop through Redis;
* burst: ``--burst`` signatures back to back; the figure is how long until
  every socket has every one of them, as frames per second.

Prints one JSON line per layout, then a Markdown table.  Needs the local
PostgreSQL and Redis (``--pg``, ``--redis``).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import multiprocessing
import os
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg2

_EVENT_PREFIX = '{"type":"event","seq":'
RATE_FLAGS = (
    "--login-per-email=1000000",
    "--register-per-address=1000000",
    "--signatures-per-user=1000000",
    "--filings-per-user=1000000",
    "--filings-per-address=1000000",
    # Every client signs from 127.0.0.1: the quiet per-address limit and trending would catch them all.
    "--signatures-per-address=1000000000",
    "--trending-threshold=1000000000",
)


# -- client processes ----------------------------------------------------------


def client_process(pipe, urls: list[str], token: str, count: int, base_seq: int, events: int) -> None:
    """Hold ``count`` sockets spread over ``urls``; send back each event's receive times."""
    asyncio.run(_client_main(pipe, urls, token, count, base_seq, events))


async def _client_main(pipe, urls, token, count, base_seq, events) -> None:
    from websockets.asyncio.client import connect

    # received[e] holds, per socket, when event base_seq + 1 + e arrived (time.monotonic()).
    received = [array.array("d") for _ in range(events)]
    opening = asyncio.Semaphore(50)  # a few handshakes at a time keep the accept queue short
    connected = 0
    failed = 0
    all_ready = asyncio.Event()
    finished = 0
    all_done = asyncio.Event()

    async def one_socket(index: int) -> None:
        nonlocal connected, failed, finished
        url = urls[index % len(urls)] + "/ws/petitions"
        try:
            async with opening:
                ws = await connect(
                    url,
                    additional_headers={"Authorization": "Bearer " + token},
                    compression=None,
                    open_timeout=60,
                    ping_interval=None,
                    max_queue=None,
                )
                hello = json.loads(await ws.recv())
                assert hello["type"] == "hello" and hello["seq"] == base_seq, hello
        except Exception as error:  # noqa: BLE001 - a benchmark counts failures, it does not stop
            print(f"socket {index} failed: {error!r}", file=sys.stderr)
            failed += 1
            if connected + failed == count:
                all_ready.set()
            return
        connected += 1
        if connected + failed == count:
            all_ready.set()
        got = 0
        start = len(_EVENT_PREFIX)
        async with ws:
            while got < events:
                message = await ws.recv()
                now = time.monotonic()
                if message.startswith(_EVENT_PREFIX):
                    seq = int(message[start : message.index(",", start)])
                    received[seq - base_seq - 1].append(now)
                    got += 1
        finished += 1
        if finished == connected:
            all_done.set()

    tasks = [asyncio.create_task(one_socket(i)) for i in range(count)]
    await all_ready.wait()
    pipe.send(("ready", connected, failed))
    if connected:
        try:
            await asyncio.wait_for(all_done.wait(), 300)
        except TimeoutError:
            print("timed out waiting for events", file=sys.stderr)
    pipe.send(("done", [r.tobytes() for r in received]))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- servers -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else (b"" if method != "GET" else None)
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def start_servers(count: int, db_url: str, redis_url: str, channel: str, sockets: int, logs: Path):
    processes = []
    for index in range(count):
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "tornado_petitions",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            db_url,
            "--redis",
            redis_url,
            "--redis-channel",
            channel,
            "--max-sockets-per-user",
            str(sockets + 10),
            "--log-level",
            "warning",
            *RATE_FLAGS,
        ]
        log = open(logs / f"server{index}.log", "wb")  # noqa: SIM115 - lives as long as the server
        processes.append((f"http://127.0.0.1:{port}", subprocess.Popen(command, stdout=log, stderr=log)))
    for url, process in processes:
        for _ in range(1000):
            if process.poll() is not None:
                raise RuntimeError(f"server {url} exited {process.returncode}; see {logs}")
            try:
                http("GET", url + "/healthz")
                break
            except OSError:
                time.sleep(0.02)
    return processes


def stop_servers(processes) -> None:
    for _, process in processes:
        process.send_signal(signal.SIGTERM)
    for _, process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_seq(url: str, seq: int) -> None:
    for _ in range(500):
        if http("GET", url + "/healthz")["seq"] >= seq:
            return
        time.sleep(0.01)
    raise RuntimeError(f"{url} never reached seq {seq}")


# -- one layout ---------------------------------------------------------------------


def run_layout(args, servers_count: int, pg_server: str, logs: Path) -> dict:
    db_name = "tp_bench_" + secrets.token_hex(4)
    admin(pg_server, f"CREATE DATABASE {db_name}")
    servers = []
    clients = []
    try:
        channel = "tp-bench-" + secrets.token_hex(4)
        servers = start_servers(
            servers_count, f"{pg_server}/{db_name}", args.redis, channel, args.sockets, logs
        )
        urls = [url for url, _ in servers]
        a = urls[0]
        user = http(
            "POST",
            a + "/api/auth/register",
            {"email": "bench@example.org", "name": "Bench", "password": "bench password"},
        )
        token = user["token"]
        petition = http("POST", a + "/api/petitions", {"title": "Benchmark", "description": "x"}, token)
        path = f"{a}/api/petitions/{petition['petition_id']}/signatures"
        base_seq = http("GET", f"{a}/api/petitions/{petition['petition_id']}/events")["events"][-1]["seq"]
        for url in urls:
            wait_for_seq(url, base_seq)

        events = args.paced + args.burst
        ws_urls = ["ws" + url[len("http") :] for url in urls]
        context = multiprocessing.get_context("fork")
        shares = [
            args.sockets // args.clients + (i < args.sockets % args.clients) for i in range(args.clients)
        ]
        for share in shares:
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=client_process, args=(child_end, ws_urls, token, share, base_seq, events), daemon=True
            )
            process.start()
            clients.append((parent_end, process))
        connect_started = time.monotonic()
        ready = [pipe.recv() for pipe, _ in clients]
        connect_seconds = time.monotonic() - connect_started
        connected = sum(r[1] for r in ready)
        failed = sum(r[2] for r in ready)

        server_pids = [process.pid for _, process in servers]
        client_pids = [process.pid for _, process in clients]
        cpu_before = [sum(map(cpu_seconds, pids)) for pids in (server_pids, client_pids)]
        sent: list[float] = []
        signing = True
        interval = 1.0 / args.rate
        next_at = time.monotonic()
        for index in range(events):
            if index < args.paced:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
            elif index == args.paced:
                burst_started = time.monotonic()
            sent.append(time.monotonic())
            http("POST" if signing else "DELETE", path, token=token)
            signing = not signing
        burst_written = time.monotonic() - burst_started

        received: list[array.array] = [array.array("d") for _ in range(events)]
        for pipe, _ in clients:
            kind, times = pipe.recv()
            for index, raw in enumerate(times):
                received[index].frombytes(raw)
        wall = time.monotonic() - sent[0]
        server_cpu, client_cpu = (
            sum(map(cpu_seconds, pids)) - before
            for pids, before in zip((server_pids, client_pids), cpu_before, strict=True)
        )
    finally:
        for _, process in clients:
            process.join(10)
            if process.is_alive():
                process.kill()
        stop_servers(servers)
        admin(pg_server, f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")

    paced_ms = sorted((t - sent[index]) * 1000 for index in range(args.paced) for t in received[index])
    burst_last = max((max(r) for r in received[args.paced :] if r), default=float("nan"))
    burst_seconds = burst_last - burst_started
    delivered = sum(len(r) for r in received)
    expected = connected * events
    return {
        "bench": "scale_out",
        "server_processes": servers_count,
        "sockets": connected,
        "failed_sockets": failed,
        "client_processes": args.clients,
        "connect_s": round(connect_seconds, 2),
        "paced_events": args.paced,
        "paced_rate_per_s": args.rate,
        "latency_p50_ms": round(_percentile(paced_ms, 50), 2),
        "latency_p99_ms": round(_percentile(paced_ms, 99), 2),
        "latency_max_ms": round(paced_ms[-1], 2) if paced_ms else None,
        "burst_events": args.burst,
        "burst_write_s": round(burst_written, 3),
        "burst_all_delivered_s": round(burst_seconds, 3),
        "burst_frames_per_s": round(connected * args.burst / burst_seconds) if burst_seconds > 0 else None,
        "wall_s": round(wall, 2),
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_us_per_frame": round(server_cpu / delivered * 1e6, 2) if delivered else None,
        "client_cpu_s": round(client_cpu, 2),
        "delivered": delivered,
        "missing": expected - delivered,
    }


def _percentile(sorted_values: list[float], percent: float) -> float:
    if not sorted_values:
        return float("nan")
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[int(percent) - 1]


def admin(pg_server: str, statement: str) -> None:
    connection = psycopg2.connect(pg_server + "/postgres")
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def markdown(results: list[dict]) -> str:
    lines = [
        "| server processes | sockets | connect s | p50 ms | p99 ms | max ms | burst: all delivered s "
        "| frames/s | server CPU s | client CPU s | wall s | missing |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['server_processes']} | {r['sockets']:,} | {r['connect_s']} | {r['latency_p50_ms']} "
            f"| {r['latency_p99_ms']} | {r['latency_max_ms']} | {r['burst_all_delivered_s']} "
            f"| {r['burst_frames_per_s']:,} | {r['server_cpu_s']} | {r['client_cpu_s']} | {r['wall_s']} "
            f"| {r['missing']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=4, help="client processes holding the sockets")
    parser.add_argument("--paced", type=int, default=20, help="events sent at --rate")
    parser.add_argument("--rate", type=float, default=2.0, help="paced events per second")
    parser.add_argument("--burst", type=int, default=100, help="events sent back to back")
    parser.add_argument("--layouts", default="1,2", help="server process counts to compare")
    parser.add_argument(
        "--pg", default=os.environ.get("PETITIONS_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
    )
    parser.add_argument("--redis", default=os.environ.get("PETITIONS_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)

    # Servers and client processes inherit this: 5,000 sockets need more than the usual 1,024 files.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.sockets + 1024
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard) if hard > 0 else wanted, hard))

    logs = Path(os.environ.get("BENCH_LOGS", "/tmp")) / f"scale_out_{os.getpid()}"
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    for count in (int(c) for c in args.layouts.split(",")):
        result = run_layout(args, count, args.pg, logs)
        print(json.dumps(result), flush=True)
        results.append(result)
    print()
    print(markdown(results))


if __name__ == "__main__":
    main()
