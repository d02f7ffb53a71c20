"""The lifetime shared by the publisher and the subscriber: one ZeroMQ socket and its context."""

from __future__ import annotations

import contextlib
from typing import Self

__all__ = ["SocketOwner"]


class SocketOwner:
    """``close()`` (linger 0, idempotent), ``closed``, ``with`` support and a quiet finaliser for a
    class holding ``self._sock`` and ``self._ctx``; ``_close_extra`` frees anything else in between."""

    def _close_extra(self) -> None:
        pass

    def close(self) -> None:
        """Close the socket at once (linger 0), release what else the object holds, free the context."""
        sock, self._sock = getattr(self, "_sock", None), None
        if sock is not None and not sock.closed:
            sock.close(linger=0)
        self._close_extra()
        ctx, self._ctx = getattr(self, "_ctx", None), None
        if ctx is not None and not ctx.closed:
            ctx.term()

    @property
    def closed(self) -> bool:
        return getattr(self, "_sock", None) is None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise from a finaliser
            self.close()
