"""Reading a small non-negative integer from untrusted text."""

from __future__ import annotations

__all__ = ["ascii_int"]


def ascii_int(s: str, max_digits: int = 9) -> int | None:
    """``s`` as an integer if it is 1 to ``max_digits`` ASCII digits, else None.

    ``str.isdigit`` alone also takes "²" and numbers of thousands of digits, which ``int``
    refuses with a ValueError (a crash where the text came from a request).
    """
    return int(s) if s.isascii() and s.isdigit() and len(s) <= max_digits else None
