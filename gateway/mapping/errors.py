"""The two ways a map can fail: a problem in the map file, and a value a transform cannot convert."""

from __future__ import annotations


class MapError(ValueError):
    """A problem in a map file, found while compiling it; ``loc`` says where in the file."""

    def __init__(self, message: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message, self.loc = message, loc


class Unconvertible(ValueError):
    """A value a transform cannot convert, with a message fit for the client (no Python internals).

    Transforms may raise any ValueError; only this one's text reaches a client as it is. For the
    others the client reads the form the transform expects (``Transform.expects``).
    """
