"""What the supervisor answers when it cannot do what it is asked."""

from __future__ import annotations


class SupervisorError(Exception):
    """A request the supervisor cannot carry out; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
