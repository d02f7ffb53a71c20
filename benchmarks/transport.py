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
from collections.abc import Callable
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
    """Child process: receive until told to stop; send back one row per message (see RemoteSubscriber)."""
    from realtime.client import Subscriber

    rows: list[tuple[int, int, int, int]] = []
    with Subscriber(endpoint) as sub:
        while not stop.is_set():
            msg = sub.recv(timeout_ms=20)
            if msg is None:
                continue
            ready.set()
            h = msg.header
            t_cap = h.get("t_capture_ns")
            rows.append((msg.seq, msg.frame, msg.recv_ns - h["t_publish_ns"], -1 if t_cap is None else msg.recv_ns - t_cap))
    results.put(rows)


class RemoteSubscriber:
    """A ``realtime.client.Subscriber`` in another process (multiprocessing, spawn) on ``endpoint``.

    ``connect(probe)`` starts it and calls ``probe()`` (which must publish one message) every 10 ms
    until the child has received one: ZeroMQ's slow joiner, so no measured message is lost to the
    subscription handshake. ``collect()`` stops the child and returns its receipts as an (N, 4)
    int64 array: ``seq``, ``frame``, receipt minus ``t_publish_ns``, receipt minus
    ``t_capture_ns`` (-1 when the header has none). Both processes read the same CLOCK_MONOTONIC.
    """

    def __init__(self, endpoint: str) -> None:
        ctx = mp.get_context("spawn")
        self.ready, self.stop, self.results = ctx.Event(), ctx.Event(), ctx.Queue()
        self.child = ctx.Process(target=_subscribe, args=(endpoint, self.ready, self.stop, self.results), daemon=True)
        self.endpoint = endpoint

    def connect(self, probe: Callable[[], object], timeout_s: float = 60.0) -> None:
        self.child.start()
        give_up = time.monotonic() + timeout_s
        while not self.ready.is_set():
            if time.monotonic() > give_up or not self.child.is_alive():
                raise RuntimeError(f"the subscriber process never received a message on {self.endpoint}")
            probe()
            time.sleep(0.01)

    def collect(self) -> np.ndarray:
        time.sleep(0.2)  # let the last messages arrive
        self.stop.set()
        rows = self.results.get(timeout=30)
        self.child.join(timeout=10)
        return np.asarray(rows, dtype=np.int64).reshape(-1, 4)

    def close(self) -> None:
        self.stop.set()
        if self.child.is_alive():
            self.child.terminate()
            self.child.join(timeout=5)


def _persons(n: int, rng: np.random.Generator) -> list[dict]:
    return [
        {"id": i, "confidence": float(rng.uniform(0.5, 1.0)), "joint_confidence": rng.uniform(0.3, 1.0, 17)}
        for i in range(n)
    ]


def measure(transport: str, persons: int, rate: float, seconds: float, warmup: float, folder: Path) -> dict[str, Any]:
    """Publish ``seconds * rate`` paced messages to a subscriber process; latency statistics."""
    from realtime.publish import Publisher

    bind = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{folder / f'bench-{persons}.sock'}"
    rng = np.random.default_rng(persons)
    people = _persons(persons, rng)
    with Publisher(bind, source={"kind": "benchmark"}) as pub:
        sub = RemoteSubscriber(pub.endpoint)
        try:
            period = 1.0 / rate
            frame = 0

            def send() -> int:
                nonlocal frame
                joints = rng.normal(0.0, 0.3, size=(persons, 17, 3)).astype(np.float32)
                joints[..., 2] += 3.0
                t0 = time.perf_counter_ns()
                pub.send(joints, frame=frame, timestamps={"t_capture_ns": time.monotonic_ns()}, persons=people)
                frame += 1
                return time.perf_counter_ns() - t0

            sub.connect(send)
            end_warmup = time.monotonic() + warmup
            while time.monotonic() < end_warmup:
                send()
                time.sleep(period)
            first = pub.seq
            n = max(1, round(seconds * rate))
            send_ns = np.empty(n)
            start = time.monotonic()
            for i in range(n):
                delay = start + i * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                send_ns[i] = send()
            end = pub.seq
            rows = sub.collect()
        finally:
            sub.close()
    keep = (rows[:, 0] >= first) & (rows[:, 0] < end)
    us = rows[keep, 2] / 1e3
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
        "samples_us": [round(float(v), 1) for v in us],
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
