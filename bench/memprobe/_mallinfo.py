"""glibc's ``mallinfo2()``, for the memory probes of the benchmarks (Linux, glibc 2.33+)."""

from __future__ import annotations

import ctypes

__all__ = ["LIBC", "mallinfo2"]


class MallInfo2(ctypes.Structure):
    """``struct mallinfo2``: every field a ``size_t`` (bytes, or counts of chunks)."""

    _fields_ = [  # noqa: RUF012 - ctypes' own declaration form
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


LIBC = ctypes.CDLL("libc.so.6")
LIBC.mallinfo2.restype = MallInfo2


def mallinfo2() -> MallInfo2:
    """glibc's heap now, summed over its arenas (``uordblks``: bytes in use)."""
    result: MallInfo2 = LIBC.mallinfo2()
    return result
