"""decompress: Content-Encoding of ingest bodies, multi-member gzip and its limits."""

from __future__ import annotations

import gzip
import os
import time
import zlib

import pytest

from sightline.errors import IngestError, PayloadTooLarge
from sightline.ingest import decompress
from sightline.ingest._service import MAX_GZIP_MEMBERS

A = b"first member " * 100
B = b"second member " * 100


def test_one_member() -> None:
    assert decompress(gzip.compress(A), "gzip", max_bytes=1 << 20) == A


def test_every_member_is_read_as_gzip_decompress_does() -> None:
    big = os.urandom(300_000)  # a member larger than the slices it is fed in
    body = gzip.compress(A) + gzip.compress(big, 1) + gzip.compress(b"") + gzip.compress(B)
    assert decompress(body, "gzip", max_bytes=1 << 20) == gzip.decompress(body) == A + big + B


def test_the_limit_counts_all_members() -> None:
    body = gzip.compress(A) + gzip.compress(B)
    assert decompress(body, "gzip", max_bytes=len(A) + len(B)) == A + B
    with pytest.raises(PayloadTooLarge):
        decompress(body, "gzip", max_bytes=len(A) + len(B) - 1)
    # a bomb in the second member is stopped at the limit too
    with pytest.raises(PayloadTooLarge):
        decompress(gzip.compress(A) + gzip.compress(b"\0" * (8 << 20)), "gzip", max_bytes=1 << 20)


@pytest.mark.parametrize(
    "body",
    [
        gzip.compress(A) + b"garbage",
        gzip.compress(A) + b"\0\0\0\0",
        gzip.compress(A) + b"\x1f",
        gzip.compress(A) + b"\x1f\x8bnot a member",
        gzip.compress(A) + gzip.compress(B)[:-4],
        gzip.compress(A)[:-4],
        b"",
    ],
    ids=[
        "garbage",
        "zero-padding",
        "half-magic",
        "bad-member",
        "truncated-2nd",
        "truncated",
        "empty",
    ],
)
def test_bytes_that_are_not_a_whole_member_are_refused(body: bytes) -> None:
    with pytest.raises(IngestError) as e:
        decompress(body, "gzip", max_bytes=1 << 20)
    assert not isinstance(e.value, PayloadTooLarge)


def test_deflate_refuses_trailing_bytes() -> None:
    assert decompress(zlib.compress(A), "deflate", max_bytes=1 << 20) == A
    with pytest.raises(IngestError, match="after the stream"):
        decompress(zlib.compress(A) + zlib.compress(B), "deflate", max_bytes=1 << 20)


def test_many_empty_members_are_refused_quickly() -> None:
    empty = gzip.compress(b"")
    ok = gzip.compress(A) + empty * (MAX_GZIP_MEMBERS - 1)
    assert decompress(ok, "gzip", max_bytes=1 << 20) == A
    body = gzip.compress(A) + empty * (16 * 2**20 // len(empty))  # a 16 MiB body of them
    t0 = time.perf_counter()
    with pytest.raises(IngestError, match="gzip members"):
        decompress(body, "gzip", max_bytes=16 << 20)
    assert time.perf_counter() - t0 < 2
