"""The C client written from docs/protocol.md reads what the Python publisher sends.

Builds ``tests/realtime/c_client/pose_client.c`` with the system C compiler and libzmq
(Debian: ``apt-get install libzmq3-dev``), runs it against a live Publisher and compares every
line it prints with what was sent. Skipped, with the reason, where no compiler or zmq.h exists.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from engines.skeleton import CANONICAL
from realtime.protocol import encode, make_header
from realtime.publish import Publisher

J = CANONICAL.num_joints
SOURCE = Path(__file__).parent / "c_client" / "pose_client.c"


@pytest.fixture(scope="module")
def pose_client(tmp_path_factory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH")
    out = tmp_path_factory.mktemp("c_client")
    probe = out / "probe.c"
    probe.write_text("#include <zmq.h>\nint main(void) { return zmq_ctx_term(zmq_ctx_new()); }\n")
    res = subprocess.run([cc, str(probe), "-o", str(out / "probe"), "-lzmq"], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        if "zmq.h" in res.stderr:
            pytest.skip("zmq.h not found: install libzmq's headers (Debian: apt-get install libzmq3-dev)")
        if "lzmq" in res.stderr:
            pytest.skip("libzmq not found by the linker: install libzmq3-dev")
        pytest.fail(f"cannot compile a libzmq probe: {res.stderr.strip()}")
    exe = out / "pose_client"
    res = subprocess.run(
        [cc, "-O2", "-Wall", "-Wextra", "-std=c11", str(SOURCE), "-o", str(exe), "-lzmq"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, f"pose_client.c does not compile:\n{res.stderr}"
    assert "warning" not in res.stderr, res.stderr
    return exe


def _run_while(proc: subprocess.Popen, send, timeout_s: float = 20.0) -> tuple[str, str]:
    """Call ``send(i)`` every 2 ms until the client exits (it joins at an unknown message)."""
    deadline = time.monotonic() + timeout_s
    i = 0
    while proc.poll() is None and time.monotonic() < deadline:
        send(i)
        i += 1
        time.sleep(0.002)
    try:
        return proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _parse(line: str) -> dict[str, str]:
    return dict(field.split("=", 1) for field in line.split())


def test_c_client_reads_the_python_stream(pose_client):
    count = 40
    rng = np.random.default_rng(3)
    sent: dict[int, tuple[int, np.ndarray]] = {}
    with Publisher("tcp://127.0.0.1:*") as pub:

        def send(i: int) -> None:
            p = i % 4  # 0..3 persons, so frames with nobody in view are included
            joints = (rng.normal(size=(p, J, 3)) * [0.5, 0.8, 1.0] + [0.0, 0.0, 3.0]).astype(np.float32)
            persons = [{"id": k, "confidence": 0.9, "joint_confidence": [0.8] * J} for k in range(p)]
            header = pub.send(joints, frame=1000 + i, timestamps={"t_capture_ns": time.monotonic_ns()}, persons=persons)
            sent[header["seq"]] = (header["frame"], joints)

        proc = subprocess.Popen(
            [str(pose_client), pub.endpoint, str(count), "5000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        out, err = _run_while(proc, send)
    assert proc.returncode == 0, f"pose_client exited {proc.returncode}: {err}"
    lines = out.strip().splitlines()
    assert len(lines) == count, out
    seqs = []
    for line in lines:
        f = _parse(line)
        seq = int(f["seq"])
        frame, joints = sent[seq]
        assert int(f["frame"]) == frame
        assert int(f["persons"]) == len(joints)
        if len(joints) == 0:
            assert f["xyz"] == "none"
        else:
            xyz = np.array([float(v) for v in f["xyz"].split(",")], dtype=np.float32)
            np.testing.assert_array_equal(xyz, joints[0, 0])  # %.9g round-trips float32 exactly
        seqs.append(seq)
    assert seqs == sorted(set(seqs))
    assert any(_parse(x)["xyz"] == "none" for x in lines) and any(_parse(x)["persons"] == "3" for x in lines)


@pytest.mark.parametrize(
    "corrupt,reason",
    [
        (lambda f: [f[0], f[1], f[2][:-4]], "payload is"),
        (lambda f: [f[0], f[1]], "2 frames"),
        (lambda f: [f[0], f[1], f[2], b"extra"], "4 frames"),
        (lambda f: [f[0], f[1].replace(b'"v":1', b'"v":2'), f[2]], '"v"'),
        (lambda f: [f[0], f[1].replace(b'"shape":[1,17,3]', b'"shape":[1,17]'), f[2]], '"shape"'),
        (lambda f: [b"posex", f[1], f[2]], "topic"),
    ],
    ids=["short payload", "two frames", "four frames", "version 2", "bad shape", "topic"],
)
def test_c_client_fails_on_protocol_violations(pose_client, corrupt, reason):
    """A raw PUB socket sends broken messages; the client must exit non-zero and say why."""
    header = make_header(seq=0, frame=0, persons=[{"id": 0, "confidence": 1.0, "joint_confidence": [1.0] * J}])
    good = encode(header, np.zeros((1, J, 3), np.float32))
    frames = corrupt(good)
    assert frames != good  # the corruption applied
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    try:
        proc = subprocess.Popen(
            [str(pose_client), f"tcp://127.0.0.1:{port}", "5", "5000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = _run_while(proc, lambda i: pub.send_multipart(frames))
    finally:
        pub.close(linger=0)
        ctx.term()
    assert proc.returncode == 5, f"exit {proc.returncode}; stdout {out!r}; stderr {err!r}"
    assert reason in err and out == ""


def test_c_client_times_out_without_a_publisher(pose_client):
    with Publisher("tcp://127.0.0.1:*") as pub:  # bound, but sends nothing
        res = subprocess.run([str(pose_client), pub.endpoint, "1", "200"], capture_output=True, text=True, check=False, timeout=30)
    assert res.returncode == 4 and "timeout" in res.stderr


def test_c_client_rejects_bad_arguments(pose_client):
    res = subprocess.run([str(pose_client)], capture_output=True, text=True, check=False, timeout=30)
    assert res.returncode == 2 and "usage" in res.stderr


@pytest.mark.slow  # runs `realtime run` on real footage
@pytest.mark.parametrize("frame,code", [("camera", 0), ("world", 5)])
def test_c_client_reads_realtime_run_in_the_camera_frame_and_refuses_the_world_frame(pose_client, frame, code,
                                                                                     shared_dir):
    """The v1-only C client reads ``realtime run --frame camera`` (protocol v1) and stops with its
    version error on the default world-frame stream (protocol v3), as docs/protocol.md says."""
    import socket
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    client = subprocess.Popen([str(pose_client), endpoint, "20", "60000"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    video = shared_dir / "media" / "pose2sim-demo" / "cam04.mp4"
    run = subprocess.run([sys.executable, "-m", "realtime.cli", "run", "--video", str(video), "--no-view", "--quiet",
                          "--bind", endpoint, "--frame", frame, "--loop", "--max-frames", "150"],
                         capture_output=True, text=True, timeout=240, check=False)
    out, err = client.communicate(timeout=30)
    assert run.returncode == 0, run.stderr
    assert client.returncode == code, f"exit {client.returncode}: {err}"
    if code == 0:
        lines = out.strip().splitlines()
        assert len(lines) == 20 and all(_parse(line)["persons"] == "1" for line in lines[1:])
    else:
        assert '"v"' in err and out == ""
