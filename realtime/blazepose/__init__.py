"""BlazePose 2D pose on PyTorch / ONNX Runtime: MediaPipe Pose's pipeline around the ported networks.

``tracker.BlazePose`` runs it (one or several people, video mode); ``geometry`` holds the
detector/landmark arithmetic and ``filters`` MediaPipe's landmark smoothing. The networks
themselves come from ``engines.blazepose``.
"""

from realtime.blazepose.tracker import BlazePose, BlazePoseConfig, PoseFrame

__all__ = ["BlazePose", "BlazePoseConfig", "PoseFrame"]
