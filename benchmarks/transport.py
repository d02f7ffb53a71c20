"""One-way ZeroMQ latency of the pose stream: publisher send to subscriber receipt, one host.

    python -m benchmarks.transport [--rate 200] [--seconds 3] [--persons 1 8]
                                   [--transports tcp ipc] [--json out.json]

For each transport (tcp loopback, ipc) and person count, a ``realtime.publish.Publisher`` in
this process publishes real protocol-v1 messages (random joints, full headers) paced at
``--rate`` Hz, and a ``realtime.client.Subscriber`` in another process (multiprocessing, spawn)
receives them. Latency per message = the subscriber's ``time.monotonic_ns()`` right after the
frames come off its socket minus the header's ``t_publish_ns``; both processes read the same
``CLOCK_MONOTONIC``. That span includes writing the header JSON and copying the payload (after
the publish stamp), libzmq's send, the kernel transport, the subscriber's I/O thread and the
wake-up of its Python ``recv``; it excludes the subscriber's decode/validation, which follows.

Warm-up: messages are sent until the subscriber has received one (ZeroMQ's slow joiner), then
for ``--warmup`` seconds more; only messages after that count. Reported: p50/p95/p99/max in
microseconds, messages received of those sent, and the publisher's own ``send()`` call time
(p50/p99, header building and validation included). Target: p99 <= 1 ms.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGET_P99_US = 1000.0


def machine() -> dict[str, Any]:
    import zmq

    from benchmarks.machine import describe

    info = describe("zmq", "numpy")
    info["libzmq"] = zmq.zmq_version()
    return info


def _subscribe(endpoint: str, ready, stop, results) -> None:
    """Child process: receive until told to stop; send back (seq, latency_ns) pairs."""
    from realtime.client import Subscriber

    seqs: list[int] = []
    lat: list[int] = []
    with Subscriber(endpoint) as sub:
        while not stop.is_set():
            msg = sub.recv(timeout_ms=20)
            if msg is None:
                continue
            ready.set()
            seqs.append(msg.seq)
            lat.append(msg.recv_ns - msg.header["t_publish_ns"])
    results.put((seqs, lat))


def _persons(n: int, rng: np.random.Generator) -> list[dict]:
    return [
        {"id": i, "confidence": float(rng.uniform(0.5, 1.0)), "joint_confidence": rng.uniform(0.3, 1.0, 17)}
        for i in range(n)
    ]


def measure(transport: str, persons: int, rate: float, seconds: float, warmup: float, folder: Path) -> dict[str, Any]:
    """Publish ``seconds * rate`` paced messages to a subscriber process; latency statistics."""
    from realtime.publish import Publisher

    ctx = mp.get_context("spawn")
    bind = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{folder / f'bench-{persons}.sock'}"
    rng = np.random.default_rng(persons)
    people = _persons(persons, rng)
    with Publisher(bind, source={"kind": "benchmark"}) as pub:
        ready, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
        child = ctx.Process(target=_subscribe, args=(pub.endpoint, ready, stop, results), daemon=True)
        child.start()
        try:
            period = 1.0 / rate

            def send(frame: int) -> int:
                joints = rng.normal(0.0, 0.3, size=(persons, 17, 3)).astype(np.float32)
                joints[..., 2] += 3.0
                t0 = time.perf_counter_ns()
                pub.send(joints, frame=frame, timestamps={"t_capture_ns": time.monotonic_ns()}, persons=people)
                return time.perf_counter_ns() - t0

            frame = 0
            give_up = time.monotonic() + 60.0
            while not ready.is_set():  # slow joiner: until the subscriber sees a message
                if time.monotonic() > give_up or not child.is_alive():
                    raise RuntimeError(f"the subscriber process never received a message on {pub.endpoint}")
                send(frame)
                frame += 1
                time.sleep(0.01)
            end_warmup = time.monotonic() + warmup
            while time.monotonic() < end_warmup:
                send(frame)
                frame += 1
                time.sleep(period)
            first = pub.seq
            n = round(seconds * rate)
            send_ns = np.empty(n)
            start = time.monotonic()
            for i in range(n):
                delay = start + i * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                send_ns[i] = send(frame)
                frame += 1
            end = pub.seq
            time.sleep(0.2)
            stop.set()
            seqs, lat = results.get(timeout=30)
            child.join(timeout=10)
        finally:
            stop.set()
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)
    seq_arr, lat_arr = np.asarray(seqs), np.asarray(lat, dtype=np.float64)
    keep = (seq_arr >= first) & (seq_arr < end)
    us = lat_arr[keep] / 1e3
    if us.size == 0:
        raise RuntimeError(f"{transport}, {persons} persons: the subscriber received none of the measured messages")
    p = np.percentile(us, [50, 95, 99])
    return {
        "transport": transport,
        "persons": persons,
        "rate_hz": rate,
        "sent": int(end - first),
        "received": int(keep.sum()),
        "p50_us": float(p[0]),
        "p95_us": float(p[1]),
        "p99_us": float(p[2]),
        "max_us": float(us.max()),
        "mean_us": float(us.mean()),
        "send_call_p50_us": float(np.percentile(send_ns, 50) / 1e3),
        "send_call_p99_us": float(np.percentile(send_ns, 99) / 1e3),
        "meets_target": bool(p[2] <= TARGET_P99_US),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    out = [
        f"| transport | persons | received/sent | p50 µs | p95 µs | p99 µs | max µs | send() p50/p99 µs | p99 ≤ {TARGET_P99_US:.0f} µs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in rows:
        out.append(
            f"| {r['transport']} | {r['persons']} | {r['received']}/{r['sent']} | {r['p50_us']:.0f} | {r['p95_us']:.0f} "
            f"| {r['p99_us']:.0f} | {r['max_us']:.0f} | {r['send_call_p50_us']:.0f}/{r['send_call_p99_us']:.0f} "
            f"| {'yes' if r['meets_target'] else 'NO'} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.transport", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=200.0, help="messages per second (default 200)")
    ap.add_argument("--seconds", type=float, default=3.0, help="measured seconds per case (default 3)")
    ap.add_argument("--warmup", type=float, default=0.5, help="seconds sent before measuring (default 0.5)")
    ap.add_argument("--persons", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--transports", nargs="+", choices=["tcp", "ipc"], default=["tcp", "ipc"])
    ap.add_argument("--json", dest="json_out", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0:
        ap.error("--rate and --seconds must be positive")

    rows = []
    with tempfile.TemporaryDirectory(prefix="posestream-bench-") as tmp:
        for transport in args.transports:
            for persons in args.persons:
                rows.append(measure(transport, persons, args.rate, args.seconds, args.warmup, Path(tmp)))
    table = markdown(rows)
    print(table)
    print(
        f"\nOne-way latency, Publisher.send (after the t_publish_ns stamp) to Subscriber receipt, "
        f"same host, {args.rate:g} Hz for {args.seconds:g} s per row; target p99 <= {TARGET_P99_US:.0f} µs."
    )
    if args.json_out:
        report = {
            "machine": machine(),
            "settings": {"rate_hz": args.rate, "seconds": args.seconds, "warmup_s": args.warmup},
            "target_p99_us": TARGET_P99_US,
            "results": rows,
            "markdown": table,
        }
        Path(args.json_out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
