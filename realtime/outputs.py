"""Stream outputs: one per-frame result, one interface, one factory from ``realtime run``'s flags.

The publish stage of :class:`realtime.pipeline.Pipeline` builds one :class:`FrameResult` per
frame and hands it to every :class:`Output` in order (:func:`send_all`). An output that puts the
frame on a wire under a sequence number (the ZeroMQ publisher) returns a :class:`PublishStamp`;
the first stamp goes into the result that every later output sees. :func:`build_outputs` puts
the ZeroMQ output first, so the VMC sender's time value and a recording's ``t_publish_ns`` are
those of the ZeroMQ message, as the pipeline's latency statistics are.

Adding an output (a world-frame recorder, another network protocol) is one :class:`Output`
subclass and one line in :func:`build_outputs`; a new flag is checked in
:meth:`OutputOptions.from_flags`, before the camera opens. An output needs no thread::

    >>> import numpy as np
    >>> class Count(Output):
    ...     def __init__(self):
    ...         self.persons = 0
    ...     def send(self, result):
    ...         self.persons += len(result.ids)
    >>> out = Count()
    >>> result = FrameResult(frame=0, timestamps={}, ids=np.array([7]), confidences=np.array([0.9]),
    ...                      joint_confidences=np.ones((1, 17)), joints=np.zeros((1, 17, 3), np.float32))
    >>> send_all([out], result).published is None  # no output here stamps the frame
    True
    >>> out.persons
    1
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engines.skeleton import CANONICAL
from realtime.protocol import CONFIDENCE_DECIMALS

if TYPE_CHECKING:
    from realtime.publish import Publisher
    from realtime.rig import RigFrame
    from realtime.vmc import VmcSender
    from realtime.world import WorldTransform

__all__ = ["FrameResult", "NpzRecorder", "Output", "OutputOptions", "PublishStamp", "VmcOutput", "ZmqOutput",
           "build_outputs", "send_all"]


@dataclass(frozen=True)
class PublishStamp:
    """Which ``seq`` a frame went out under and when (monotonic ns): the ZeroMQ header's values."""

    seq: int
    t_publish_ns: int


@dataclass(frozen=True)
class FrameResult:
    """One published frame, as every output receives it; P persons, 17 canonical joints.

    ``frame``: the source frame index. ``timestamps``: the stage stamps named in
    ``realtime.protocol.STAGE_TIMESTAMPS`` (monotonic ns, None where a stage left none).
    ``ids`` (P,) person ids; ``confidences`` (P,) person confidence; ``joint_confidences``
    (P, 17); ``joints`` (P, 17, 3) float32, metres, in ``frame_of_reference``: ``camera`` (x
    right, y down, z forward) or ``world`` (``realtime.world``: y up, floor at y = 0).
    ``rig``: the body stage's ``realtime.rig.RigFrame`` for the same persons in the same order,
    its rows in the rig frame (camera) or the world frame (world). ``world``: the
    ``realtime.world.WorldTransform`` in use, None while unknown. ``contacts`` (P, 2): per
    person ``[left, right]`` foot contact probabilities, when the body stage ran.
    ``published``: the first :class:`PublishStamp` an output returned (see :func:`send_all`),
    None before that. The arrays are shared, not copied: outputs only read them.
    """

    frame: int
    timestamps: Mapping[str, int | None]
    ids: np.ndarray
    confidences: np.ndarray
    joint_confidences: np.ndarray
    joints: np.ndarray
    rig: RigFrame | None = None
    frame_of_reference: str = "camera"
    world: WorldTransform | None = None
    contacts: np.ndarray | None = None
    published: PublishStamp | None = None

    def __post_init__(self) -> None:
        p, j = len(self.ids), CANONICAL.num_joints
        if self.joints.shape != (p, j, 3) or self.joints.dtype != np.float32:
            raise ValueError(f"joints must be float32 shaped ({p}, {j}, 3) for {p} ids, "
                             f"got {self.joints.dtype} {self.joints.shape}")
        if np.shape(self.confidences) != (p,) or np.shape(self.joint_confidences) != (p, j):
            raise ValueError(f"confidences must be shaped ({p},) and joint confidences ({p}, {j}), got "
                             f"{np.shape(self.confidences)} and {np.shape(self.joint_confidences)}")
        if self.rig is not None and len(self.rig.ids) != p:
            raise ValueError(f"the rig holds {len(self.rig.ids)} persons, the frame {p}")
        if self.frame_of_reference not in ("camera", "world"):
            raise ValueError(f"frame_of_reference must be camera or world, got {self.frame_of_reference!r}")
        if self.contacts is not None and np.shape(self.contacts) != (p, 2):
            raise ValueError(f"contacts must be shaped ({p}, 2), got {np.shape(self.contacts)}")

    @property
    def t_publish_ns(self) -> int | None:
        """The publish stamp, None while no output has stamped the frame."""
        return None if self.published is None else self.published.t_publish_ns

    def persons(self) -> list[dict[str, Any]]:
        """The protocol's ``persons`` entries, one per row (see ``realtime.protocol.make_header``)."""
        people = [{"id": int(i), "confidence": float(s), "joint_confidence": jc}
                  for i, s, jc in zip(self.ids, self.confidences, self.joint_confidences)]
        if self.contacts is not None:
            for person, c in zip(people, np.round(np.asarray(self.contacts, np.float64), CONFIDENCE_DECIMALS).tolist()):
                person["contacts"] = c
        return people


class Output(ABC):
    """Where published frames go: :meth:`start` when the stream starts, :meth:`send` once per
    frame, in frame order, from one thread, :meth:`close` once at the end.

    ``needs_rig``: whether :meth:`send` uses ``result.rig`` (``realtime run`` puts a rig solver in
    the pipeline when any output needs it). ``notice``: one line for the start-up messages on stderr (where the
    output goes), or None.
    """

    needs_rig: bool = False
    notice: str | None = None

    def start(self) -> None:
        """The stream starts (``Pipeline.run`` calls it before the first frame); nothing by default."""

    @abstractmethod
    def send(self, result: FrameResult) -> PublishStamp | None:
        """Take one frame. Return a stamp only if this output sent it under a sequence number."""

    def close(self) -> None:
        """Release what the output holds and finish what it wrote; nothing by default. Also called
        for an output whose stream never started (a later part failed to open)."""


def send_all(outputs: Sequence[Output], result: FrameResult) -> FrameResult:
    """Hand ``result`` to each output in order; the first stamp returned goes into the result that
    the later outputs see. Returns the result as the last output saw it."""
    for output in outputs:
        stamp = output.send(result)
        if stamp is not None and result.published is None:
            result = dataclasses.replace(result, published=stamp)
    return result


class ZmqOutput(Output):
    """The ZeroMQ PUB socket (``realtime.publish.Publisher``): protocol v1, or v2 (the rig's rows
    as a fourth frame) with ``rotations``. It returns the stamp its header carries.

    An adapter rather than a method of ``Publisher``: ``Publisher.send(joints, frame=, ...)`` is
    the publisher's public call for programs that have no pipeline, and stays as it is.
    """

    def __init__(self, publisher: Publisher, rotations: bool = False) -> None:
        self.publisher = publisher
        self.rotations = self.needs_rig = bool(rotations)

    def send(self, result: FrameResult) -> PublishStamp:
        rig = {"rig": result.rig.rows} if self.rotations and result.rig is not None else {}
        world = result.world
        header = self.publisher.send(result.joints, frame=result.frame, timestamps=result.timestamps,
                                     persons=result.persons(), frame_of_reference=result.frame_of_reference,
                                     world_from_camera=None if world is None else world.matrix_list(),
                                     world=None if world is None else world.describe(), **rig)
        return PublishStamp(header["seq"], header["t_publish_ns"])

    def close(self) -> None:
        self.publisher.close()


class VmcOutput(Output):
    """The rig as VMC bundles over UDP (``realtime.vmc.VmcSender``), timed by the publish stamp."""

    needs_rig = True

    def __init__(self, sender: VmcSender) -> None:
        self.sender = sender
        host, port = sender.address
        self.notice = f"sending VMC to {host}:{port}" + (" (another machine)" if sender.remote else "")

    def send(self, result: FrameResult) -> None:
        self.sender.send(result.rig, result.t_publish_ns)

    def close(self) -> None:
        self.sender.close()


class NpzRecorder(Output):
    """``--record take.npz``: every published frame, kept in memory and written once, atomically,
    by :meth:`close` once the stream has started (also after Ctrl-C or a failed stage, even with
    no frame; a stream that never started writes no file).

    Arrays: ``frame``, ``t_capture_ns``, ``t_publish_ns`` (0 where a stamp is missing),
    ``persons`` (one per message), ``world_from_camera`` (messages, 4, 4; NaN while unknown);
    ``joints`` (rows, 17, 3) metres in ``frame_of_reference`` (``"world"`` or ``"camera"``, the
    stream's ``--frame``), ``row_message`` (the message index of each row), ``person_id``,
    ``joint_confidence`` (rows, 17; rounded to ``realtime.protocol.CONFIDENCE_DECIMALS`` as
    published), ``contacts`` (rows, 2; left, right foot; 0 without the body stage); ``joint_names``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.meta: list[tuple[int, int, int, int]] = []
        self.rows: list[np.ndarray] = []
        self.row_msg: list[int] = []
        self.ids: list[int] = []
        self.conf: list[np.ndarray] = []
        self.contacts: list[np.ndarray] = []
        self.world: list[np.ndarray] = []
        self.frame_of_reference = "camera"
        self.started = False

    def start(self) -> None:
        self.started = True

    def send(self, result: FrameResult) -> None:
        k = len(self.meta)
        self.meta.append((result.frame, result.timestamps.get("t_capture_ns") or 0, result.t_publish_ns or 0,
                          len(result.ids)))
        conf = np.round(np.asarray(result.joint_confidences, np.float64), CONFIDENCE_DECIMALS).astype(np.float32)
        contacts = np.zeros((len(result.ids), 2), np.float32) if result.contacts is None else result.contacts
        self.frame_of_reference = result.frame_of_reference
        self.world.append(np.full((4, 4), np.nan) if result.world is None else result.world.matrix)
        for pid, row, c, fc in zip(result.ids, result.joints, conf, contacts):
            self.rows.append(row)
            self.row_msg.append(k)
            self.ids.append(int(pid))
            self.conf.append(c)
            self.contacts.append(np.asarray(fc, np.float32))

    def write(self) -> Path:
        """Write the take (atomically); returns its path."""
        from engines.fileio import atomic_path

        meta = np.asarray(self.meta, np.int64).reshape(-1, 4)
        J = CANONICAL.num_joints
        with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, frame=meta[:, 0], t_capture_ns=meta[:, 1], t_publish_ns=meta[:, 2], persons=meta[:, 3],
                     joints=np.asarray(self.rows, np.float32).reshape(-1, J, 3),
                     row_message=np.asarray(self.row_msg, np.int64), person_id=np.asarray(self.ids, np.int64),
                     joint_confidence=np.asarray(self.conf, np.float32).reshape(-1, J),
                     contacts=np.asarray(self.contacts, np.float32).reshape(-1, 2),
                     world_from_camera=np.asarray(self.world, np.float64).reshape(-1, 4, 4),
                     frame_of_reference=np.asarray(self.frame_of_reference),
                     joint_names=np.asarray(CANONICAL.joint_names))
        return self.path

    def close(self) -> None:
        if self.started:
            self.write()


@dataclass(frozen=True)
class OutputOptions:
    """What a stream sends and records: ``--bind`` (ZeroMQ endpoint), ``--vmc`` (host, port),
    ``--record`` (``.bvh``: a BVH take, anything else: npz) and ``--rotations`` (protocol v2)."""

    bind: str
    vmc: tuple[str, int] | None = None
    record: Path | None = None
    rotations: bool = False

    @classmethod
    def from_flags(cls, *, bind: str, vmc: str | None, record: str | None, rotations: bool) -> OutputOptions:
        """The options, checked (one sentence each) before anything heavy opens: ``vmc`` parsed and
        its host resolved, the recording's folder made and found writable."""
        address = None
        if vmc is not None:
            from realtime.vmc import VmcSender, parse_host_port

            address = parse_host_port(vmc)
            VmcSender(*address).close()  # resolves the host now: a typo is one sentence before anything loads
        path = Path(record) if record else None
        if path is not None:
            _check_writable(path)
        return cls(bind=bind, vmc=address, record=path, rotations=bool(rotations))


def _check_writable(path: Path) -> None:
    """Fail now, not after the take, when the recording cannot be written where asked."""
    import tempfile

    if path.is_dir():
        raise IsADirectoryError(f"cannot record to {path}: it is a directory; give a file name such as take.bvh")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".check"):
            pass
    except OSError as exc:
        raise OSError(f"cannot record to {path}: {exc.strerror or exc}") from None


def build_outputs(options: OutputOptions, source_info: Mapping[str, Any], fps: float | None) -> list[Output]:
    """Every output ``options`` ask for, the ZeroMQ publisher first (its stamp reaches the others).

    ``source_info`` goes into every ZeroMQ header (``source``); ``fps`` is the source's frame rate
    (a BVH take's frame time; 30 when unknown). If one output fails to open, the ones already
    open are closed before the error propagates.
    """
    from realtime.publish import Publisher

    outputs: list[Output] = []
    try:
        outputs.append(ZmqOutput(Publisher(options.bind, source=dict(source_info)), options.rotations))
        if options.vmc is not None:
            from realtime.vmc import VmcSender

            outputs.append(VmcOutput(VmcSender(*options.vmc)))
        if options.record is not None and options.record.suffix.lower() == ".bvh":
            from realtime.bvh_export import BvhRecorder

            outputs.append(BvhRecorder(options.record, fps=float(fps or 30.0)))
        elif options.record is not None:
            outputs.append(NpzRecorder(options.record))
    except BaseException:
        for output in outputs:
            output.close()
        raise
    return outputs
