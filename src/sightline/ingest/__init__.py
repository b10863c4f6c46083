"""Ingest: decode OTLP and native payloads, normalise, price, and commit them durably."""

from sightline.ingest._decode import DecodeResult, Limits
from sightline.ingest._service import Format, IngestResult, IngestService, decompress
from sightline.ingest._writer import GroupCommitWriter

__all__ = [
    "DecodeResult",
    "Format",
    "GroupCommitWriter",
    "IngestResult",
    "IngestService",
    "Limits",
    "decompress",
]
