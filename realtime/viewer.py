"""Open3D viewer for a posestream pose stream (protocol v1, v2 or v3 over ZeroMQ; it draws the joints).

Coordinate frames. The viewer draws in a y-up frame (x right, y up, z backward, OpenGL's
convention). What it puts there depends on what a message says about the capturing camera:

* **World frame known.** A v3 message (``frame_of_reference: "world"``) carries joints in the
  world frame of ``realtime.world`` (floor at y = 0, origin on the floor below the camera, -z the
  camera's forward direction along the floor); they are drawn as they are. A v1/v2 message
  (camera frame) whose header has a ``world_from_camera`` matrix ``M`` is turned into that world
  frame with ``p_world = M [p_cam; 1]`` and drawn the same way. The floor grid lies at y = 0 (the
  estimated or calibrated floor), and the capturing camera is drawn as a frustum from ``M``: a
  pyramid :data:`FRUSTUM_DEPTH_M` deep from its optical centre ``M [0; 1]`` along its optical
  axis, as wide as the lifter's assumed field of view (:data:`FRUSTUM_FOV_DEG` across the longer
  image side) with the image's aspect ratio (``header["source"]`` width and height, else 16:9),
  and a small triangle on the image's top edge, so a camera that looks down or is rolled shows
  it (a v3 message whose matrix is null: no frustum). The frustum is rebuilt only when ``M``
  moves by more than :data:`CAMERA_TOLERANCE` (an estimate refines slowly; redrawing it every
  message would cost for nothing).
* **No world frame** (``world_from_camera`` null or absent: an older publisher, or an estimate
  not ready yet). The camera-frame joints (x right, y down, z forward) are turned 180 degrees
  about x, so people stand upright and the capturing camera sits at the origin looking down -z;
  the floor grid lies under the lowest joint (smoothed), and no frustum is drawn.

Either way a person facing the camera has their left side on the right of the picture, as in the
camera image.

The view is fixed: it aims at a point 0.9 m above the floor at the people's centre when they
first appear (and again when a stream gains or loses its world frame), and re-aims only when
they move more than 1.5 m away along the floor. It looks from 3.6 m in front of that point and
0.6 m above it; with a camera drawn, from behind that camera instead (1.6 m further from the
people, 0.7 m to the right, 0.5 m up), since from in front of the people the camera would sit
beside or above the eye, out of the picture. Legacy Open3D has no text overlay and cannot
retitle its window, so fps and latency (now - t_capture_ns, meaningful when publisher and viewer
share a host clock) go to a status line on stdout once per second.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import numpy as np

from engines.skeleton import CANONICAL

__all__ = ["CAMERA_TOLERANCE", "FRUSTUM_DEPTH_M", "FRUSTUM_FOV_DEG", "PALETTES", "ViewerConfig", "run_viewer"]

_J = CANONICAL.num_joints
_SIDE = np.zeros(_J, dtype=np.int64)  # 0 centre, 1 left, 2 right
_SIDE[list(CANONICAL.left_joints)] = 1
_SIDE[list(CANONICAL.right_joints)] = 2
_EDGES = np.array(CANONICAL.edges, dtype=np.int32)  # (16, 2) parent, child
_CAM_TO_WORLD = np.array([1.0, -1.0, -1.0])  # 180 degrees about x: y down/z forward -> y up/z back

PALETTES: tuple[tuple[tuple[float, float, float], ...], ...] = (
    # (centre, left, right) per person; bones take their child joint's side, joints are lighter.
    ((0.92, 0.92, 0.92), (1.00, 0.50, 0.05), (0.10, 0.55, 1.00)),  # white, orange, blue
    ((1.00, 0.85, 0.20), (1.00, 0.15, 0.55), (0.15, 0.85, 0.35)),  # yellow, pink, green
    ((0.85, 0.60, 0.45), (0.70, 0.30, 1.00), (0.10, 0.85, 0.85)),  # tan, violet, cyan
)
"""Colour families, one per person (cycled): (centre, left, right) RGB in 0..1."""
_BACKGROUND = (0.07, 0.07, 0.09)
_FLOOR = (0.32, 0.32, 0.36)
_ANKLE_TO_SOLE_M = 0.07  # the lowest joint is an ankle centre, a few cm above the floor
_EYE_OFFSET = np.array([0.0, 0.6, 3.6])  # viewer eye relative to the look-at point (world frame)
_BEHIND_CAMERA = (1.6, 0.7, 0.5)  # eye behind, right of and above a drawn camera (metres, as seen from it)
_AIM_HEIGHT_M = 0.9  # the look-at point's height above the floor
_FRUSTUM = (0.85, 0.30, 0.30)  # a red no palette colour (nor its lighter joint shade) comes near
FRUSTUM_DEPTH_M = 0.3
"""How far the drawn camera frustum reaches along the optical axis."""
FRUSTUM_FOV_DEG = 60.0
"""The frustum's field of view across the longer image side: the one posestream's lifter assumes
(``engines.models.ASSUMED_FOV_DEG``; not imported, that module brings in torch)."""
CAMERA_TOLERANCE = 0.01
"""The frustum is redrawn when an entry of ``world_from_camera`` moved more than this since it
was drawn (about 0.6 degrees of rotation, or 1 cm)."""
_DEFAULT_ASPECT = 16.0 / 9.0


@dataclass(frozen=True)
class ViewerConfig:
    """How to view: where the stream is, window size, and the headless screenshot mode.

    ``frames``: stop after this many messages (None: until the window is closed or Ctrl-C).
    ``screenshot``: PNG path for the last frame, written once ``frames`` messages were shown.
    ``timeout_s``: headless only, give up (exit 1) when no message arrives for this long; a
    window instead waits, printing a "waiting for" line each second.
    """

    endpoint: str = "tcp://127.0.0.1:5556"
    width: int = 960
    height: int = 720
    headless: bool = False
    screenshot: str | None = None
    frames: int | None = None
    timeout_s: float = 10.0


class _ViewerError(Exception):
    """No window could be opened, or the stream stayed silent past the timeout (exit 1)."""


def run_viewer(config: ViewerConfig) -> int:
    """Show the stream at ``config.endpoint``; return the exit status.

    0: ``frames`` messages shown (screenshot written), window closed, or Ctrl-C. 1: no window
    could be opened, or (headless) no message for ``timeout_s``; one sentence goes to stderr.
    A bad endpoint (``SubscriberError``, an ``OSError``) or a message that breaks the protocol
    (``ProtocolError``, a ``ValueError``) propagates for the CLI to report.
    """
    import open3d as o3d  # heavy: imported only when a viewer actually starts

    # Ctrl-C sets a flag the loop checks: a KeyboardInterrupt raised inside Open3D's C++ calls
    # can be swallowed there, and then the window would never close
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    sub = None
    scene: _Scene | None = None
    try:
        sub = _subscribe(config.endpoint)
        scene = _Scene(o3d, config)
        return _loop(sub, scene, config, stop)
    except KeyboardInterrupt:
        return 0
    except _ViewerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if scene is not None:
            scene.close()
        if sub is not None:
            sub.close()


def _loop(sub: Any, scene: _Scene, config: ViewerConfig, stop: Any = None) -> int:
    status = _Status(config.endpoint)
    received, last_msg = 0, time.monotonic()
    while config.frames is None or received < config.frames:
        if stop is not None and stop.is_set():
            return 0  # Ctrl-C
        if not scene.alive():
            return 0  # window closed: nothing left to screenshot
        msg = sub.recv(timeout_ms=100 if config.headless else 15)
        if msg is None:
            silent = time.monotonic() - last_msg
            if config.headless and silent > config.timeout_s:
                raise _ViewerError(_silence_sentence(config, received))
            scene.idle()
            status.waiting(silent)
            continue
        received, last_msg = received + 1, time.monotonic()
        joints = np.asarray(msg.joints, dtype=np.float32)
        if joints.ndim != 3 or joints.shape[1:] != (_J, 3):
            raise ValueError(f"expected pose joints shaped (P, {_J}, 3), got {joints.shape}")
        persons = msg.header.get("persons") or []
        ids = [p.get("id", k) for k, p in enumerate(persons)] if len(persons) == len(joints) else None
        t0 = time.perf_counter()
        scene.show(joints, ids, msg.header)
        status.frame(msg.header, joints.shape[0], (time.perf_counter() - t0) * 1e3)
    if config.screenshot:
        scene.save(config.screenshot)
    return 0


def _silence_sentence(config: ViewerConfig, received: int) -> str:
    if received == 0:
        return (f"no pose messages arrived from {config.endpoint} within {config.timeout_s:g} s; "
                "is `realtime run` publishing there?")  # fmt: skip
    return (f"the stream from {config.endpoint} stopped after {received} messages "
            f"(nothing for {config.timeout_s:g} s)")  # fmt: skip


class _Status:
    """Once-per-second status line: fps, median latency and render time, person count."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint, self.t0, self.frames = endpoint, time.monotonic(), 0
        self.latency_ms: list[float] = []
        self.render_ms: list[float] = []
        self.persons = 0
        self.last_wait_print = 0.0

    def frame(self, header: dict, persons: int, render_ms: float) -> None:
        self.frames, self.persons = self.frames + 1, persons
        self.render_ms.append(render_ms)
        if header.get("t_capture_ns") is not None:
            self.latency_ms.append((time.monotonic_ns() - int(header["t_capture_ns"])) / 1e6)
        elapsed = time.monotonic() - self.t0
        if elapsed >= 1.0:
            who = "no person" if persons == 0 else f"{persons} person{'s' * (persons > 1)}"
            lat = f"{np.median(self.latency_ms):.1f} ms" if self.latency_ms else "n/a"
            print(f"{self.frames / elapsed:5.1f} fps | latency {lat} | render "
                  f"{np.median(self.render_ms):.1f} ms | {who} | seq {header.get('seq')}",
                  flush=True)  # fmt: skip
            self.t0, self.frames, self.latency_ms, self.render_ms = time.monotonic(), 0, [], []

    def waiting(self, silent_s: float) -> None:
        if silent_s >= 1.0 and time.monotonic() - self.last_wait_print >= 1.0:
            self.last_wait_print = time.monotonic()
            print(f"waiting for pose messages from {self.endpoint} ({silent_s:.0f} s); "
                  "is `realtime run` publishing there?", flush=True)  # fmt: skip


class _Scene:
    """The Open3D window and its four geometries: bones, joints, the floor grid and the camera frustum."""

    def __init__(self, o3d: Any, config: ViewerConfig) -> None:
        self.o3d, self.config = o3d, config
        self.vis = o3d.visualization.Visualizer()
        title = f"posestream viewer - {config.endpoint}"
        if not self.vis.create_window(title, config.width, config.height, visible=not config.headless):
            raise _ViewerError("Open3D could not open a window (nor an offscreen EGL context) to draw in")
        opt = self.vis.get_render_option()
        opt.background_color = np.array(_BACKGROUND)
        opt.line_width, opt.point_size = 6.0, 11.0
        self.bones, self.floor, self.frustum = (o3d.geometry.LineSet() for _ in range(3))
        self.dots = o3d.geometry.PointCloud()
        self.lookat = np.array([0.0, 0.0, -3.0])  # until someone appears: 3 m in front of the camera
        self.floor_y, self.aimed = -1.0, False
        self.in_world = False  # joints drawn in the world frame (floor at 0), else the turned camera frame
        self.camera: tuple[np.ndarray, float] | None = None  # (world_from_camera, aspect) the frustum shows
        self._rebuild_floor()
        self.vis.add_geometry(self.floor)  # its extent becomes the view's bounding box
        for g in (self.bones, self.dots, self.frustum):
            self.vis.add_geometry(g, reset_bounding_box=False)  # empty until a person (a camera) arrives
        self._aim()
        self.image: np.ndarray | None = None

    def alive(self) -> bool:
        return self.config.headless or bool(self.vis.poll_events())

    def idle(self) -> None:
        if not self.config.headless:
            self.vis.update_renderer()

    def show(self, joints: np.ndarray, ids: list[int] | None = None, header: Mapping[str, Any] | None = None) -> None:
        """Draw ``(P, 17, 3)`` joints (P may be 0) in the frame ``header`` names and render one frame.

        ``header``: the message's (validated) header; it says whether the joints are in the world
        or the camera frame and carries ``world_from_camera`` (None: camera-frame joints, no
        world frame). ``ids``: tracking ids, one per person; they pick the colour family, so a
        person keeps their colours when the order of people changes (default: the row index).
        """
        header = header or {}
        m = _world_from_camera(header)
        if header.get("frame_of_reference") == "world":
            world = joints.astype(np.float64)
        elif m is not None:
            world = joints.astype(np.float64) @ m[:3, :3].T + m[:3, 3]
        else:
            world = joints.astype(np.float64) * _CAM_TO_WORLD
        in_world = m is not None or header.get("frame_of_reference") == "world"
        self._place_camera(m, _aspect(header.get("source")))
        if in_world != self.in_world:
            self._enter(in_world)
        people = world.shape[0]
        if people:
            lowest = 0.0 if in_world else float(world[..., 1].min()) - _ANKLE_TO_SOLE_M
            centre = world[:, 0].mean(axis=0)
            if not self.aimed or np.linalg.norm((centre - self.lookat)[[0, 2]]) > 1.5:
                self.floor_y = lowest
                self.lookat = np.array([centre[0], lowest + _AIM_HEIGHT_M, centre[2]])
                self._rebuild_floor()
                self._aim()
                self.aimed = True
            elif abs(lowest - self.floor_y) > 0.01:
                self.floor_y += 0.1 * (lowest - self.floor_y)  # smoothed: no jitter with the feet
                self._rebuild_floor()
        ids = list(range(people)) if ids is None else ids
        colours = np.array([PALETTES[int(k) % len(PALETTES)] for k in ids]).reshape(people, 3, 3)
        joint_rgb = colours[:, _SIDE].reshape(-1, 3)  # (P*17, 3)
        lines = (_EDGES[None] + _J * np.arange(people, dtype=np.int32)[:, None, None]).reshape(-1, 2)
        edge_rgb = colours[:, _SIDE[_EDGES[:, 1]]].reshape(-1, 3)
        v3, v2 = self.o3d.utility.Vector3dVector, self.o3d.utility.Vector2iVector
        points = world.reshape(-1, 3)
        self.bones.points, self.bones.lines, self.bones.colors = v3(points), v2(lines), v3(edge_rgb)
        self.dots.points, self.dots.colors = v3(points), v3(0.55 * joint_rgb + 0.45)
        for g in (self.bones, self.dots):
            self.vis.update_geometry(g)
        if self.config.headless:
            self.image = np.asarray(self.vis.capture_screen_float_buffer(do_render=True))
        else:
            self.vis.poll_events()
            self.vis.update_renderer()

    def save(self, path: str) -> None:
        """Write the last rendered frame to ``path`` as PNG, atomically (temp file + rename)."""
        image = self.image
        if image is None or not self.config.headless:
            image = np.asarray(self.vis.capture_screen_float_buffer(do_render=True))
        rgb = np.ascontiguousarray((np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.png")
        if not self.o3d.io.write_image(str(tmp), self.o3d.geometry.Image(rgb)):
            tmp.unlink(missing_ok=True)
            raise OSError(f"could not write the screenshot {out}")
        os.replace(tmp, out)

    def close(self) -> None:
        self.vis.destroy_window()

    def _rebuild_floor(self, half: float = 3.0, step: float = 0.5) -> None:
        """A square grid of lines at height ``floor_y``, centred under the look-at point."""
        t = np.arange(-half, half + 1e-9, step)
        n, lo, hi = len(t), np.full(len(t), -half), np.full(len(t), half)
        # 4n points (x, z): lines along z start/end, then lines along x start/end
        xz = np.concatenate([np.c_[t, lo], np.c_[t, hi], np.c_[lo, t], np.c_[hi, t]]) + self.lookat[[0, 2]]
        pts = np.c_[xz[:, 0], np.full(4 * n, self.floor_y), xz[:, 1]]
        i = np.arange(n, dtype=np.int32)
        lines = np.concatenate([np.c_[i, i + n], np.c_[i + 2 * n, i + 3 * n]])
        v3 = self.o3d.utility.Vector3dVector
        self.floor.points, self.floor.lines = v3(pts), self.o3d.utility.Vector2iVector(lines)
        self.floor.colors = v3(np.tile(_FLOOR, (2 * n, 1)))
        self.vis.update_geometry(self.floor)

    def _enter(self, in_world: bool) -> None:
        """Switch between the world frame (floor at 0) and the turned camera frame; aim afresh
        at the next person (the same people now stand elsewhere in the drawing)."""
        self.in_world, self.aimed = in_world, False
        self.floor_y = 0.0 if in_world else -1.0
        self.lookat = np.array([0.0, _AIM_HEIGHT_M if in_world else 0.0, -3.0])
        self._rebuild_floor()
        self._aim()

    def _place_camera(self, m: np.ndarray | None, aspect: float) -> None:
        """Draw the frustum of the camera ``m`` (world_from_camera; None: none), unless the one
        drawn is within :data:`CAMERA_TOLERANCE` of it."""
        if m is None and self.camera is None:
            return
        if m is not None and self.camera is not None:
            drawn, drawn_aspect = self.camera
            if np.abs(m - drawn).max() <= CAMERA_TOLERANCE and abs(aspect - drawn_aspect) < 1e-3:
                return
        v3, v2 = self.o3d.utility.Vector3dVector, self.o3d.utility.Vector2iVector
        if m is None:
            points, lines = np.zeros((0, 3)), np.zeros((0, 2), np.int32)
        else:
            points, lines = _frustum(m, aspect)
        self.frustum.points, self.frustum.lines = v3(points), v2(lines)
        self.frustum.colors = v3(np.tile(_FRUSTUM, (len(lines), 1)))
        self.vis.update_geometry(self.frustum)
        self.camera = None if m is None else (m.copy(), aspect)

    def _eye(self) -> np.ndarray:
        """Where the view looks from: :data:`_EYE_OFFSET` from the look-at point; with a camera
        drawn, behind that camera instead (:data:`_BEHIND_CAMERA`), so people and frustum are both
        in view (from in front of the people the camera would sit beside or above the eye)."""
        if self.camera is None:
            return self.lookat + _EYE_OFFSET
        centre = self.camera[0][:3, 3]
        back = (centre - self.lookat) * np.array([1.0, 0.0, 1.0])
        back = back / np.linalg.norm(back) if np.linalg.norm(back) > 0.3 else np.array([0.0, 0.0, 1.0])
        right = np.cross([0.0, 1.0, 0.0], back)
        behind, side, up = _BEHIND_CAMERA
        return centre + behind * back + side * right + np.array([0.0, up, 0.0])

    def _aim(self, vfov_deg: float = 45.0) -> None:
        """Fixed pinhole camera at ``lookat + _EYE_OFFSET`` looking at ``lookat``, y up."""
        eye = self._eye()
        fwd = (self.lookat - eye) / np.linalg.norm(self.lookat - eye)
        right = np.cross(fwd, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        rot = np.stack([right, np.cross(fwd, right), fwd])  # rows: x right, y down, z forward
        extrinsic = np.eye(4)
        extrinsic[:3, :3], extrinsic[:3, 3] = rot, -rot @ eye
        w, h = self.config.width, self.config.height
        f = (h / 2) / np.tan(np.radians(vfov_deg) / 2)
        params = self.o3d.camera.PinholeCameraParameters()
        params.intrinsic = self.o3d.camera.PinholeCameraIntrinsic(w, h, f, f, w / 2 - 0.5, h / 2 - 0.5)
        params.extrinsic = extrinsic
        ctl = self.vis.get_view_control()
        ctl.set_constant_z_near(0.05)
        ctl.set_constant_z_far(100.0)
        ctl.convert_from_pinhole_camera_parameters(params, allow_arbitrary=True)


def _world_from_camera(header: Mapping[str, Any]) -> np.ndarray | None:
    """The header's ``world_from_camera`` as a (4, 4) array (None when null or absent)."""
    m = header.get("world_from_camera")
    return None if m is None else np.asarray(m, dtype=np.float64).reshape(4, 4)


def _aspect(source: object) -> float:
    """Image width / height from ``header["source"]``, else 16:9."""
    if isinstance(source, Mapping):
        w, h = source.get("width"), source.get("height")
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (w, h)):
            return float(w) / float(h)
    return _DEFAULT_ASPECT


def _frustum(m: np.ndarray, aspect: float, depth: float = FRUSTUM_DEPTH_M) -> tuple[np.ndarray, np.ndarray]:
    """World points (8, 3) and lines (10, 2) of the camera ``m`` (world_from_camera): the optical
    centre, the image rectangle ``depth`` ahead, and a triangle on its top edge (image up)."""
    half_long = depth * np.tan(np.radians(FRUSTUM_FOV_DEG) / 2)
    hw, hh = (half_long, half_long / aspect) if aspect >= 1 else (half_long * aspect, half_long)
    cam = np.array([
        (0.0, 0.0, 0.0),
        (-hw, -hh, depth), (hw, -hh, depth), (hw, hh, depth), (-hw, hh, depth),  # camera y is down
        (-0.4 * hw, -hh, depth), (0.4 * hw, -hh, depth), (0.0, -hh - 0.35 * hw, depth),
    ])  # fmt: skip
    lines = np.array([(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1), (5, 7), (7, 6)], np.int32)
    return cam @ m[:3, :3].T + m[:3, 3], lines


def _subscribe(endpoint: str) -> Any:
    """A ``realtime.client.Subscriber`` that returns only the newest message (render the present)."""
    from realtime.client import Subscriber  # imports zmq; only when a viewer starts

    return Subscriber(endpoint, latest_only=True)
