from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sightline.pii import PII_TYPES, _find, find_pii, iban_valid, luhn_valid, person_names_available


def _found(text: str, **kw: object) -> list[tuple[str, str]]:
    return [(m.type, text[m.start : m.end]) for m in find_pii(text, **kw)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mail jane.doe@example.com now", ("email", "jane.doe@example.com")),
        ("Mail sean.o'brien@example.ie now", ("email", "sean.o'brien@example.ie")),
        ("write to 'ana@example.com' please", ("email", "ana@example.com")),
        ("Call +1 (415) 555-0198 today", ("phone", "+1 (415) 555-0198")),
        ("Call 212-555-0147 today", ("phone", "212-555-0147")),
        ("Card 4539 1488 0343 6467 exp", ("credit_card", "4539 1488 0343 6467")),
        ("Amex 3782 822463 10005.", ("credit_card", "3782 822463 10005")),
        ("IBAN DE89 3704 0044 0532 0130 00 at", ("iban", "DE89 3704 0044 0532 0130 00")),
        ("SSN 078-05-1120 on file", ("national_id", "078-05-1120")),
        ("NI number JG 10 37 42 B", ("national_id", "JG 10 37 42 B")),
        ("db at 10.12.4.37 port", ("ip_address", "10.12.4.37")),
        ("from 2a01:4f8:c17:1b2::1 too", ("ip_address", "2a01:4f8:c17:1b2::1")),
        ("key AKIAIOSFODNN7EXAMPLE here", ("secret", "AKIAIOSFODNN7EXAMPLE")),
        (
            "tok ghp_8fK2mN4pQ7rS1tV3wX5yZ9aB6cD0eF2gH4jK",
            ("secret", "ghp_8fK2mN4pQ7rS1tV3wX5yZ9aB6cD0eF2gH4jK"),
        ),  # fmt: skip
        ("password: Tr0ub4dor&3xK9 ok", ("secret", "Tr0ub4dor&3xK9")),
        (
            "secret Zx8Kq2Lm9Vb4Nw7Rt5Yp3Hs6Jd1Fg0Qa end",
            ("secret", "Zx8Kq2Lm9Vb4Nw7Rt5Yp3Hs6Jd1Fg0Qa"),
        ),  # fmt: skip
    ],
)
def test_finds_each_type(text: str, expected: tuple[str, str]) -> None:
    assert _found(text, types=[t for t in PII_TYPES if t != "person"]) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "IBAN DE89 3704 0044 0532 0130 01 has a bad checksum",
        "SSN 000-12-3456 is not issued",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "request 123e4567-e89b-12d3-a456-426614174000",
        "order #4829301 on 2024-06-14 at 10:30:00",
        "version v1.2.3.4 and localhost 127.0.0.1",
        "Set version to 1.2.3.4 in config.yaml; Version: 2.0.1.7, version=3.0.0.1",
        "set api_key=<your-key> or token = YOUR_API_KEY",
        "ISBN 978-3-16-148410-0",
    ],
)
def test_lookalikes_are_not_pii(text: str) -> None:
    assert _found(text, types=[t for t in PII_TYPES if t != "person"]) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # An address ending a sentence was missed: the pattern refused any "." after it.
        ("The server is 203.0.113.7.", ("ip_address", "203.0.113.7")),
        ("Blocked 198.51.100.23. Then it retried.", ("ip_address", "198.51.100.23")),
        # The commonest way to write a US number was missed (only - and . were separators).
        ("Call me at 415 555 0132.", ("phone", "415 555 0132")),
        ("my cell is 212 555 0147, thanks", ("phone", "212 555 0147")),
    ],
)
def test_common_formats_at_sentence_ends_and_with_spaces(
    text: str, expected: tuple[str, str]
) -> None:
    assert _found(text, types=[t for t in PII_TYPES if t != "person"]) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "versions 1.2.3.4.5 and host 10.0.0.1.nip.io",
        "sizes 100 200 3000 and 415 555 0132 7 in a table",
        "readings 3.415 555 0132 and 1 212 555 0147 9",
    ],
)
def test_spaced_numbers_and_dotted_names_stay_unflagged(text: str) -> None:
    assert _found(text, types=[t for t in PII_TYPES if t != "person"]) == []


def test_checksums() -> None:
    assert luhn_valid("4539148803436467") and not luhn_valid("4539148803436468")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")
    assert not iban_valid("GB82WEST1234569876543")  # wrong length for GB


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown PII types"):
        find_pii("x", types=["emails"])


def test_person_names_with_spacy() -> None:
    assert person_names_available()
    assert _found("I forwarded it to Priya Raman yesterday.") == [("person", "Priya Raman")]
    assert _found("Hello, how are you?") == []


def test_the_key_hint_admits_every_provider_key_format() -> None:
    """The one-search prefilter of secrets must never hide a key the full patterns find."""
    import re as _re

    from sightline.pii import _find

    samples = [
        "-----BEGIN RSA PRIVATE KEY-----",
        "AKIAABCDEFGHIJKLMNOP",
        "ghp_" + "a1" * 18,
        "github_pat_" + "x" * 70,
        "glpat-" + "a" * 20,
        "xoxb-1234567890-abc",
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "sk_live_" + "a" * 16,
        "sk-ant-" + "a" * 20,
        "sk-proj-" + "a" * 20,
        "AIza" + "a" * 35,
        "hf_" + "a" * 30,
        "npm_" + "a" * 36,
        "SG." + "a" * 16 + "." + "b" * 20,
        "SK" + "0123456789abcdef" * 2,
        "eyJhbGciOiJI.eyJzdWIiOiIx.abcdefghij",
        "postgres://admin:hunter22@db.example.com",
    ]
    kinds = set()
    for s in samples:
        text = f"please keep {s} safe"
        full = [(m.start(), m.end(), k) for k, rx in _find._KEYS for m in rx.finditer(text)]
        assert full, s  # the sample is a real match of some pattern
        assert _find._KEY_HINT.search(text) is not None, s
        assert [f for f in _find._secrets(text) if f in full] == full
        kinds |= {k for _, _, k in full}
    assert kinds == {k for k, _ in _find._KEYS}
    assert _re.search(_find._KEY_HINT, "How do I reset my password? (request 3)") is None


class TestDigitGates:
    """The digit counts checked before the card, SSN, NINO and phone patterns never skip one."""

    @pytest.mark.parametrize(
        ("text", "type_"),
        [
            ("card 4222222222222 ok", "credit_card"),  # 13 digits
            ("ssn 078-05-1120", "national_id"),  # 9
            ("ssn 219099999", "national_id"),
            ("NINO AB 12 34 56 C", "national_id"),  # 6
            ("call +1 212 5550", "phone"),  # 8
        ],
    )
    def test_findings_at_the_fewest_digits_are_kept(self, text: str, type_: str) -> None:
        assert [m.type for m in find_pii(text)] == [type_]

    @settings(max_examples=500, deadline=None)
    @given(st.text(alphabet="0123456789 -+().ABCDssn", max_size=40))
    def test_a_gated_pattern_matches_only_texts_past_its_gate(self, text: str) -> None:
        for rx, fewest in (
            (_find._CARD, 13),
            (_find._SSN, 9),
            (_find._SSN_BARE, 9),
            (_find._NINO, 6),
        ):
            if rx.search(text):
                assert not _find._fewer_digits(text, fewest), (rx.pattern, text)
        for m in _find._PHONE.finditer(text):
            if sum(c.isdigit() for c in m.group()) >= 8:  # what _phones keeps
                assert not _find._fewer_digits(text, 8), text


@pytest.mark.timeout(60)
def test_many_findings_in_one_text_take_linear_time() -> None:
    """Each finding was tested against every earlier one: 8,000 emails (72 kB) took 4 s, and
    a 1 MiB text of them (the longest ingest keeps) ~15 minutes of an ingest worker."""
    import time

    from sightline.redact import Redactor

    text = "ab@cd.io 10.0.0.7 " * 20_000  # 360 kB, 40,000 findings of two types
    t0 = time.perf_counter()
    found = find_pii(text, types=["email", "ip_address"])
    out = Redactor()(text)
    assert time.perf_counter() - t0 < 10
    assert len(found) == 40_000 and out.startswith("<EMAIL> <IP_ADDRESS> <EMAIL>")
    assert "ab@cd.io" not in out and "10.0.0.7" not in out


_PATTERN_TYPES = [t for t in PII_TYPES if t != "person"]


class TestCompressedIpv6LowercaseIbanAndZeroZeroPhones:
    """Forms people write that were missed: ``fe80::1``, ``gb82 west ...``, ``0044 20 ...``."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            # two colons around "::" were refused: the filter wanted 3+ colons
            ("link-local fe80::1 on eth0", ("ip_address", "fe80::1")),
            ("ping fe80::1%eth0 now", ("ip_address", "fe80::1")),
            ("open http://[fd00::7]:8080/ please", ("ip_address", "fd00::7")),
            ("multicast to ff02::1.", ("ip_address", "ff02::1")),
            ("from 2001:db8::8a2e:370:7334 too", ("ip_address", "2001:db8::8a2e:370:7334")),
            # an IBAN in lower case (the pattern wanted upper case letters)
            ("iban gb82 west 1234 5698 7654 32 thanks", ("iban", "gb82 west 1234 5698 7654 32")),
            ("iban: gb82west12345698765432.", ("iban", "gb82west12345698765432")),
            ("pay to de89 3704 0044 0532 0130 00 today", ("iban", "de89 3704 0044 0532 0130 00")),
            ("Iban Gb82 West 1234 5698 7654 32", ("iban", "Gb82 West 1234 5698 7654 32")),
            # 00, the international prefix outside North America, instead of the +
            ("call 0044 20 7946 0958 today", ("phone", "0044 20 7946 0958")),
            ("appelez le 0033 1 23 45 67 89.", ("phone", "0033 1 23 45 67 89")),
            ("Tel. 0049-30-901820 (office)", ("phone", "0049-30-901820")),
            ("from abroad 001 415 555 0132", ("phone", "001 415 555 0132")),
            ("Irish mobile 00353 87 123 4567", ("phone", "00353 87 123 4567")),
        ],
    )
    def test_is_found(self, text: str, expected: tuple[str, str]) -> None:
        assert _found(text, types=_PATTERN_TYPES) == [expected]

    @pytest.mark.parametrize(
        "text",
        [
            # loopback and unspecified, as 127.0.0.1 and 0.0.0.0 (docs/security.md)
            "bind to ::1 or :: locally",
            # code: C++, Rust and Ruby paths, Python and NumPy slices
            "std::string s; std::vector<int> v; use std::io;",
            "Foo::Bar::baz and a::b and dead::beef and cafe::f00d",
            "xs[1::2], data[::2], a[100::2], f()[100::3], m[:, ::3], s[::-1]",
            # times, ratios, versions, prefixes without a host, MAC addresses, digests
            "at 12:30 or 12:30:45, ratio 16:9, 1::2",
            "version 2.1.0 v1.2.3.4 build 10.0.19045 release 2024.06",
            "the prefix fe80::/10 and fe80:: itself",
            "NIC 00:1a:2b:3c:4d:5e",
            "sha 3f786850e387550fdab836ed7e6dc881de23001b md5 de12abcd34ef56ab78cd90ef12345678",
            # IBAN shapes failing the checksum or the country's length, in any case
            "iban gb82 west 1234 5698 7654 33 is wrong",
            "gb82 west 1234 5698 7654 3 is short",
            "ab12 cdef ghij klmn op is no country",
            "word de12 then plenty of lowercase words follow here",
            # zero-padded numbers that are not phones
            "order 00123456789 and part 0012 3456 7890 1234",
            "ids 0000 1234 5678 and 0044",
            "iban DE89 3704 0044 0532 0130 01 bad checksum, account 3.0044 20 7946 0958",
        ],
    )
    def test_lookalikes_stay_unflagged(self, text: str) -> None:
        assert _found(text, types=_PATTERN_TYPES) == []

    def test_a_zero_zero_number_hashes_to_the_tag_of_its_plus_form(self) -> None:
        from sightline.redact import RedactionPolicy, Redactor

        r = Redactor(RedactionPolicy.from_dict({"types": {"phone": "hash"}}), secret=b"k")
        assert r("call 0044 20 7946 0958") == r("call +44 20 7946 0958") != "call <PHONE>"

    def test_redaction_of_json_messages_finds_a_two_colon_address(self) -> None:
        """The cheap whole-value check skipped messages whose strings held no 3 colons."""
        from sightline.redact import Redactor

        rec = {
            "input_messages": [{"role": "user", "content": "my box is fe80::1"}],
            "ingest_notes": [],
        }
        assert Redactor().redact_record(rec) == {"ip_address": 1}
        assert rec["input_messages"] == [{"role": "user", "content": "my box is <IP_ADDRESS>"}]


@pytest.mark.timeout(120)
def test_adversarial_colons_hex_and_digit_runs_take_linear_time() -> None:
    """100 kB built to make the address, IBAN and phone patterns backtrack costs about what
    100 kB of prose does (best of 3 each, measured here, so a slow machine slows both)."""
    import random
    import time

    from sightline.redact import Redactor

    n = 100_000
    rng = random.Random(5)
    hostile = {
        "hex_and_colons": "".join(rng.choice("0123456789abcdef:") for _ in range(n)),
        "colon_runs": "".join(rng.choice(["::", ":", "1", "fe80", " ", "a1::"]) for _ in range(n))[
            :n
        ],
        "compressed_groups": ("fe80::1:" * n)[:n],
        "spaced_groups": (" fe80::" * n)[:n],
        "slices": ("a[1::2]" * n)[:n],
        "iban_heads": ("gb82 west " * n)[:n],
        "zero_zero_runs": ("0044 1 " * n)[:n],
        "digit_run": "0044 " + "1" * (n - 5),
        "spaced_zero_zero_runs": ("00 44 1 " * n)[:n],
        "spaced_zero_zero_digit_run": "00 44 " + "1" * (n - 6),
        "spaced_pairs": ("00 44 12 34 56 78 " * n)[:n],
        "hex_colons_and_dots": "".join(rng.choice("0123456789abcdef:.") for _ in range(n)),
        "mapped_heads": (" ::ffff:1.2.3." * n)[:n],
        "dotted_tails": (" 64:ff9b::1.2.3.999" * n)[:n],
        "mapped_runs": ("::ffff:1.2.3.4:" * n)[:n],
        "long_dotted_tail": " ::ffff:" + "1." * ((n - 8) // 2),
    }
    prose = ("The quick brown fox jumps over the lazy dog while it sleeps. " * (n // 50))[:n]
    redact = Redactor()

    def best(text: str) -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            find_pii(text, types=_PATTERN_TYPES)
            redact(text)
            times.append(time.perf_counter() - t0)
        return min(times)

    baseline = best(prose)
    for name, text in hostile.items():
        assert len(text) == n
        took = best(text)
        # linear patterns stay within a small factor of prose (~2-4x here); a backtracking
        # one takes seconds to hours on 100 kB
        assert took < 40 * baseline + 0.05, (name, took, baseline)


class TestEmbeddedIpv4Eui64AndSpacedZeroZeroPhones:
    """IPv6 with a dotted IPv4 tail, EUI-64 interface ids, and ``00 44 20 ...`` phones."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            # the dotted tail was found as IPv4, leaving "::ffff:" or the network prefix behind
            ("client ::ffff:192.0.2.44 connected", ("ip_address", "::ffff:192.0.2.44")),
            ("from [::FFFF:192.0.2.44]:443 now", ("ip_address", "::FFFF:192.0.2.44")),
            ("client ::ffff:c000:22c connected", ("ip_address", "::ffff:c000:22c")),
            ("nat64 64:ff9b::192.0.2.33 ok", ("ip_address", "64:ff9b::192.0.2.33")),
            ("nat64 64:ff9b:1::192.0.2.33.", ("ip_address", "64:ff9b:1::192.0.2.33")),
            ("siit ::ffff:0:192.0.2.1 today", ("ip_address", "::ffff:0:192.0.2.1")),
            ("full 2001:db8:1:2:3:4:192.0.2.1 too", ("ip_address", "2001:db8:1:2:3:4:192.0.2.1")),
            ("compat ::192.0.2.1 too", ("ip_address", "::192.0.2.1")),
            # EUI-64 interface ids (the MAC address inside: a device id)
            ("nd fe80::0211:22ff:fe33:4455 up", ("ip_address", "fe80::0211:22ff:fe33:4455")),
            ("ping FE80::211:22FF:FE33:4455%eth0", ("ip_address", "FE80::211:22FF:FE33:4455")),
            ("slaac 2001:db8::211:22ff:fe33:4455.", ("ip_address", "2001:db8::211:22ff:fe33:4455")),
            (
                "host 2001:0db8:0000:0000:0211:22ff:fe33:4455 up",
                ("ip_address", "2001:0db8:0000:0000:0211:22ff:fe33:4455"),
            ),
            # 00, a space, then the country code
            ("call 00 44 20 7946 0958 today", ("phone", "00 44 20 7946 0958")),
            ("from abroad 00 1 415 555 0132.", ("phone", "00 1 415 555 0132")),
            ("appelez le 00 33 1 23 45 67 89", ("phone", "00 33 1 23 45 67 89")),
            ("Tel. 00 49 30 901820 (office)", ("phone", "00 49 30 901820")),
            ("mobile 00 353 87 123 4567", ("phone", "00 353 87 123 4567")),
            ("ring 00 44 (0)20 7946 0958", ("phone", "00 44 (0)20 7946 0958")),
        ],
    )
    def test_is_found_whole(self, text: str, expected: tuple[str, str]) -> None:
        assert _found(text, types=_PATTERN_TYPES) == [expected]

    @pytest.mark.parametrize(
        "text",
        [
            # mapped loopback, unspecified and broadcast, as their IPv4 forms
            "bind ::ffff:127.0.0.1 and ::ffff:7f00:1 and ::ffff:0.0.0.0 or ::255.255.255.255",
            "via 64:ff9b::127.0.0.1 locally",
            # a dotted tail that is no IPv4 address is not cut to a hex group
            "ratio fe80::1.5 and ::ffff:1.2.3 and ::ffff:10.0.0.1.nip.io and ::ffff:1.2.3.4567",
            "slice a[1::2.5] at 12:30:45.123",
            # numbers after 00 and a space that are not phones
            "scores 00 12 34 56 78 90",  # 12 is no country code
            "elapsed 00 44 12",  # too few digits
            "dump 0a 00 44 12 34 56 78 ff",  # a hex dump: two digits a group
            "lotto 00 44 20 79 46 09 58",
            "table 1 00 44 20 7946 0958 and 00 44 20 7946 0958 12 34 56",  # inside a run of numbers
            "price 3.00 44 20 7946 0958 and 1,00 44 20 7946 0958",
            "at 12:00 44 20 7946 0958 rows",
            "zeros 00 00 44 20 7946 0958",
            "padded 00 0044 1234 5678",
        ],
    )
    def test_lookalikes_stay_unflagged(self, text: str) -> None:
        assert _found(text, types=_PATTERN_TYPES) == []

    def test_the_whole_address_is_one_redaction(self) -> None:
        from sightline.redact import RedactionPolicy, Redactor

        assert Redactor()("client ::ffff:192.0.2.44 and 64:ff9b::192.0.2.33") == (
            "client <IP_ADDRESS> and <IP_ADDRESS>"
        )
        r = Redactor(RedactionPolicy.from_dict({"types": {"phone": "hash"}}), secret=b"k")
        assert r("call 00 44 20 7946 0958") == r("call +44 20 7946 0958") != "call <PHONE>"
        assert r("call 00 1 415 555 0132") == r("call +1 415 555 0132")
