"""The one error a parser raises: a bad input file, with a short reason a person can act on."""

from __future__ import annotations

import os


class ParseError(ValueError):
    """``path`` could not be turned into text; ``reason`` says why (e.g. "empty document").

    A ``ValueError`` because the input, not the program, is at fault. ``status_code`` lets a
    service map it to an HTTP answer without knowing parser details (422: understood the request,
    cannot process the content).
    """

    status_code = 422

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[ParseError], tuple[str, str]]:
        # Keep the error picklable (process pools): ValueError would replay only the message.
        return (type(self), (self.path, self.reason))
