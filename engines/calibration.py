"""Read and write multi-camera calibrations: our own TOML/JSON format and Qualisys ``.qca.txt``.

Every reader returns a list of ``engines.camera.Camera`` (metres, OpenCV camera frame: x right,
y down, z forward; ``X_cam = R X_world + t``) in the world frame the file uses. The file formats,
their units and frames, an example of each and how a Qualisys export is read are documented in
``docs/calibration.md``.

Any problem with a file raises ``CalibrationError`` (a ``ValueError``) whose message is one
sentence naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engines.camera import Camera

__all__ = [
    "CalibrationError",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "load_calibration",
    "save_calibration",
    "load_qualisys",
    "load_ours",
    "cameras_to_dict",
]

FORMAT_NAME = "posestream-calibration"
FORMAT_VERSION = 1
_QCA_SUFFIX = ".qca.txt"
_REQUIRED = ("name", "width", "height", "fx", "fy", "cx", "cy", "R", "t")
_OPTIONAL = ("dist",)
# Qualisys camera frame (x right, y up, looking along -z) -> OpenCV camera frame.
_QUALISYS_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"Calibration file '{path}': {problem}")


# ----------------------------------------------------------------------------------------------
# Dispatch
# ----------------------------------------------------------------------------------------------
def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(_QCA_SUFFIX):
        return "qca"
    if path.suffix.lower() in (".toml", ".json"):
        return path.suffix.lower()[1:]
    raise CalibrationError(
        path, f"unknown suffix '{path.suffix}', expected .toml, .json or {_QCA_SUFFIX}."
    )


def load_calibration(path: str | Path) -> list[Camera]:
    """Read cameras from ``path``, choosing the reader by suffix (.toml, .json, .qca.txt)."""
    path = Path(path)
    kind = _kind(path)
    if not path.is_file():
        raise CalibrationError(path, "no such file.")
    return load_qualisys(path) if kind == "qca" else load_ours(path)


def save_calibration(path: str | Path, cameras: Sequence[Camera]) -> None:
    """Write ``cameras`` to ``path`` in our format, TOML or JSON by suffix (Qualisys is read-only)."""
    path = Path(path)
    kind = _kind(path)
    if kind == "qca":
        raise CalibrationError(
            path, "writing Qualisys .qca.txt files is not supported, use .toml or .json."
        )
    if len(cameras) == 0 or not all(isinstance(c, Camera) for c in cameras):
        raise ValueError(f"save_calibration needs a non-empty sequence of Camera, got {cameras!r}.")
    names = [c.name for c in cameras]
    if len(set(names)) != len(names):
        raise ValueError(f"save_calibration needs unique camera names, got {names}.")
    doc = cameras_to_dict(cameras)
    text = json.dumps(doc, indent=2) + "\n" if kind == "json" else _to_toml(doc)
    path.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# Our format
# ----------------------------------------------------------------------------------------------
def cameras_to_dict(cameras: Sequence[Camera]) -> dict[str, Any]:
    """The document ``save_calibration`` writes, as plain Python values."""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "camera": [
            {
                "name": c.name,
                "width": c.width,
                "height": c.height,
                "fx": c.fx,
                "fy": c.fy,
                "cx": c.cx,
                "cy": c.cy,
                "dist": [float(v) for v in c.dist],
                "R": [[float(v) for v in row] for row in c.R],
                "t": [float(v) for v in c.t],
            }
            for c in cameras
        ],
    }


def _toml_string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)  # shortest string that parses back to the same double
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML.")


def _to_toml(doc: dict[str, Any]) -> str:
    lines = [
        f"# Camera calibration, {FORMAT_NAME} version {FORMAT_VERSION} (see engines/calibration.py).",
        "# Camera frame x right, y down, z forward; X_cam = R @ X_world + t; metres and pixels.",
        f"format = {_toml_value(doc['format'])}",
        f"version = {doc['version']}",
        "",
    ]
    for cam in doc["camera"]:
        lines.append("[[camera]]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in cam.items())
        lines.append("")
    return "\n".join(lines)


def _number(path: Path, where: str, key: str, v: Any, integer: bool = False) -> float | int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise CalibrationError(path, f"{where} key '{key}' must be a number, got {v!r}.")
    if integer:
        if float(v) != int(v) or v <= 0:
            raise CalibrationError(path, f"{where} key '{key}' must be a positive integer, got {v!r}.")
        return int(v)
    return float(v)


def _matrix(path: Path, where: str, key: str, v: Any, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.array(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(
            path, f"{where} key '{key}' must be a numeric array of shape {shape}, got {v!r}."
        ) from None
    if arr.shape != shape:
        raise CalibrationError(path, f"{where} key '{key}' must have shape {shape}, got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(path, f"{where} key '{key}' must be finite, got {arr.tolist()}.")
    return arr


def _camera_from_table(path: Path, index: int, table: Any) -> Camera:
    where = f"camera entry {index}"
    if not isinstance(table, dict):
        raise CalibrationError(path, f"{where} must be a table/object, got {type(table).__name__}.")
    if isinstance(table.get("name"), str):
        where = f"camera entry {index} ('{table['name']}')"
    missing = [k for k in _REQUIRED if k not in table]
    if missing:
        raise CalibrationError(path, f"{where} is missing the required key '{missing[0]}'.")
    unknown = sorted(set(table) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise CalibrationError(path, f"{where} has unknown key '{unknown[0]}'.")
    if not isinstance(table["name"], str) or not table["name"]:
        raise CalibrationError(
            path, f"{where} key 'name' must be a non-empty string, got {table['name']!r}."
        )
    width = _number(path, where, "width", table["width"], integer=True)
    height = _number(path, where, "height", table["height"], integer=True)
    fx, fy, cx, cy = (_number(path, where, k, table[k]) for k in ("fx", "fy", "cx", "cy"))
    R = _matrix(path, where, "R", table["R"], (3, 3))
    t = _matrix(path, where, "t", table["t"], (3,))
    dist = np.zeros(5)
    if "dist" in table:
        d = np.asarray(table["dist"], dtype=object)
        if d.ndim != 1 or len(d) not in (4, 5):
            raise CalibrationError(
                path,
                f"{where} key 'dist' must be [k1, k2, p1, p2] or [k1, k2, p1, p2, k3], "
                f"got {table['dist']!r}.",
            )
        dist = _matrix(path, where, "dist", table["dist"], (len(d),))
    try:
        return Camera(table["name"], width, height, fx, fy, cx, cy, R, t, dist)
    except ValueError as e:
        raise CalibrationError(path, f"{where} is invalid: {e}") from None


def load_ours(path: str | Path) -> list[Camera]:
    """Read our TOML or JSON calibration format (schema: ``docs/calibration.md``)."""
    path = Path(path)
    kind = _kind(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CalibrationError(path, f"cannot be read ({e.strerror}).") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8")) if kind == "toml" else json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CalibrationError(path, "is not UTF-8 text.") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise CalibrationError(path, f"is not valid {kind.upper()} ({e}).") from None
    if not isinstance(doc, dict):
        raise CalibrationError(
            path, f"must hold an object with a 'camera' list, got {type(doc).__name__}."
        )
    unknown = sorted(set(doc) - {"format", "version", "camera"})
    if unknown:
        raise CalibrationError(path, f"has unknown top-level key '{unknown[0]}'.")
    if "format" in doc and doc["format"] != FORMAT_NAME:
        raise CalibrationError(path, f"has format {doc['format']!r}, expected {FORMAT_NAME!r}.")
    if "version" in doc and doc["version"] != FORMAT_VERSION:
        raise CalibrationError(
            path, f"has version {doc['version']!r}, this reader understands version {FORMAT_VERSION}."
        )
    tables = doc.get("camera")
    if not isinstance(tables, list) or len(tables) == 0:
        raise CalibrationError(
            path, "has no cameras (expected a non-empty 'camera' list, [[camera]] in TOML)."
        )
    cameras = [_camera_from_table(path, i, t) for i, t in enumerate(tables)]
    _check_unique(path, cameras)
    return cameras


def _check_unique(path: Path, cameras: list[Camera]) -> None:
    seen: set[str] = set()
    for c in cameras:
        if c.name in seen:
            raise CalibrationError(path, f"has two cameras named '{c.name}'.")
        seen.add(c.name)


# ----------------------------------------------------------------------------------------------
# Qualisys
# ----------------------------------------------------------------------------------------------
def _attr(path: Path, elem: ET.Element, where: str, name: str) -> float:
    v = elem.get(name)
    if v is None:
        raise CalibrationError(path, f"{where} <{elem.tag}> is missing the attribute '{name}'.")
    try:
        f = float(v)
    except ValueError:
        raise CalibrationError(
            path, f"{where} <{elem.tag}> attribute '{name}' is not a number: {v!r}."
        ) from None
    if not math.isfinite(f):
        raise CalibrationError(path, f"{where} <{elem.tag}> attribute '{name}' is not finite: {v!r}.")
    return f


def _child(path: Path, cam: ET.Element, where: str, tag: str) -> ET.Element:
    e = cam.find(tag)
    if e is None:
        raise CalibrationError(path, f"{where} has no <{tag}> element.")
    return e


def _qualisys_camera(path: Path, index: int, cam: ET.Element) -> Camera:
    serial = cam.get("serial")
    where = f"camera {index}" + (f" ('{serial}')" if serial else "")
    if not serial:
        raise CalibrationError(path, f"{where} has no 'serial' attribute to name it.")
    rotation = cam.get("viewrotation", "0").strip()
    if rotation not in ("0", "0.0"):
        raise CalibrationError(
            path, f"{where} has viewrotation={rotation!r}; only 0 (unrotated video) is supported."
        )

    fov = _child(path, cam, where, "fov_video")
    left, top, right, bottom = (_attr(path, fov, where, k) for k in ("left", "top", "right", "bottom"))
    intr = _child(path, cam, where, "intrinsic")
    fu, fv, cu, cv = (
        _attr(path, intr, where, k)
        for k in ("focalLengthU", "focalLengthV", "centerPointU", "centerPointV")
    )
    k1, k2, k3 = (_attr(path, intr, where, f"radialDistortion{i}") for i in (1, 2, 3))
    p1, p2 = (_attr(path, intr, where, f"tangentalDistortion{i}") for i in (1, 2))
    if intr.get("skew") is not None and _attr(path, intr, where, "skew") != 0.0:
        raise CalibrationError(
            path,
            f"{where} has a non-zero skew ({intr.get('skew')}), "
            "which this camera model cannot represent.",
        )

    scale = 1.0
    res = cam.get("video_resolution")
    if res is not None and res.strip().upper() not in ("", "N/A"):
        m = re.fullmatch(r"\s*(\d+)\s*[pP]\s*", res)
        if m is None:
            raise CalibrationError(
                path, f"{where} has an unreadable video_resolution {res!r} (expected e.g. '1080p')."
            )
        scale = int(m.group(1)) / 1080.0

    width = (right - left + 1.0) * scale
    height = (bottom - top + 1.0) * scale
    if width < 1 or height < 1 or abs(width - round(width)) > 1e-6 or abs(height - round(height)) > 1e-6:
        raise CalibrationError(
            path, f"{where} <fov_video> gives an invalid image size {width} x {height}."
        )

    tr = _child(path, cam, where, "transform")
    r = np.array([[_attr(path, tr, where, f"r{i}{j}") for j in (1, 2, 3)] for i in (1, 2, 3)])
    position_m = np.array([_attr(path, tr, where, k) for k in ("x", "y", "z")]) / 1000.0
    if np.abs(r @ r.T - np.eye(3)).max() > 1e-6 or np.linalg.det(r) < 0:
        raise CalibrationError(path, f"{where} <transform> r11..r33 is not a rotation matrix.")
    R = _QUALISYS_TO_OPENCV @ r  # r's rows are the camera axes in the world; why: docs/calibration.md
    t = -R @ position_m
    try:
        return Camera(
            serial, int(round(width)), int(round(height)),
            fu / 64.0 * scale, fv / 64.0 * scale,
            (cu / 64.0 - left) * scale, (cv / 64.0 - top) * scale,
            R, t, np.array([k1, k2, p1, p2, k3]),
        )
    except ValueError as e:
        raise CalibrationError(path, f"{where} is invalid: {e}") from None


def load_qualisys(path: str | Path) -> list[Camera]:
    """Read a Qualisys QTM ``.qca.txt`` calibration (how each element is read: ``docs/calibration.md``).

    Returns the active cameras in file order, named by their ``serial``, in metres, with the
    Qualisys world frame (z-up) kept as is.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise CalibrationError(path, f"is not valid XML ({e}).") from None
    except OSError as e:
        raise CalibrationError(path, f"cannot be read ({e.strerror}).") from None
    if root.tag != "calibration":
        raise CalibrationError(
            path, f"is not a Qualisys calibration (root element <{root.tag}>, expected <calibration>)."
        )
    elems = root.findall("cameras/camera")
    if not elems:
        raise CalibrationError(path, "has no <cameras>/<camera> elements.")
    active = [(i, e) for i, e in enumerate(elems) if e.get("active", "1").strip() != "0"]
    cameras = [_qualisys_camera(path, i, e) for i, e in active]
    if not cameras:
        raise CalibrationError(path, "has no active cameras.")
    _check_unique(path, cameras)
    return cameras
