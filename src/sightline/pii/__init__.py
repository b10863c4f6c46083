"""Find personal data and secrets in text: emails, phones, cards, IBANs, ids, IPs, keys, names.

Pure Python: regular expressions and checksum validators from the standard library, so the
SDK (OpenTelemetry only) can redact before export and the ingest path before storage.
``import sightline.pii`` loads no NumPy, spaCy or DuckDB; person names use spaCy only when it
is installed, imported on first use.
"""

from sightline.pii._checks import iban_valid, luhn_valid, shannon_entropy
from sightline.pii._find import PII_TYPES, PiiMatch, find_pii, person_names_available

__all__ = [
    "PII_TYPES",
    "PiiMatch",
    "find_pii",
    "iban_valid",
    "luhn_valid",
    "person_names_available",
    "shannon_entropy",
]
