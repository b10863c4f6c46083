"""Redact personal data and secrets before anything is stored, or before it leaves the app.

Pure Python on :mod:`sightline.pii` (regular expressions and checksums; person names through
spaCy only when it is installed and the policy asks for them), so the SDK can import it with
nothing but OpenTelemetry installed. The ingest decoder runs :func:`redact_record` on every span
after normalisation; ``sightline.init(redact="default")`` runs the same rules in the app.
"""

from sightline.redact._policy import (
    ACTIONS,
    DEFAULT_POLICY,
    FIELDS,
    OFF_POLICY,
    PATTERN_TYPES,
    REDACT_TYPES,
    Action,
    RedactionPolicy,
)
from sightline.redact._redactor import (
    JSON_TEXTS,
    REDACTIONS_ATTRIBUTE,
    Redactor,
    as_text_redactor,
    redact_record,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_POLICY",
    "FIELDS",
    "JSON_TEXTS",
    "OFF_POLICY",
    "PATTERN_TYPES",
    "REDACTIONS_ATTRIBUTE",
    "REDACT_TYPES",
    "Action",
    "RedactionPolicy",
    "Redactor",
    "as_text_redactor",
    "redact_record",
]
