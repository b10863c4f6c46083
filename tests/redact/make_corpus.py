"""Writes tests/redact/data/pii_corpus.jsonl: synthetic PII cases (seeded, reproducible).

Run `python tests/redact/make_corpus.py` to regenerate. Every value is made up: cards pass Luhn,
IBANs pass mod-97 with their country's length, SSNs follow the area/group/serial rules.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

OUT = Path(__file__).parent / "data" / "pii_corpus.jsonl"
rng = random.Random(20261123)

FIRST = ["Maria", "James", "Aisha", "Wei", "Olga", "Carlos", "Priya", "Thomas", "Fatima", "Lukas",
         "Sofia", "Daniel", "Emma", "Hiroshi", "Grace", "Ahmed", "Laura", "Peter", "Nadia", "Jonas",
         "Elena", "Robert", "Chloe", "Martin", "Anna"]  # fmt: skip
LAST = ["Gonzalez", "Smith", "Khan", "Zhang", "Petrova", "Rodriguez", "Patel", "Mueller",
        "Hassan", "Becker", "Rossi", "Johnson", "Wilson", "Tanaka", "Kim", "Ali", "Martin",
        "Novak", "Fischer", "Andersen", "Garcia", "Brown", "Dubois", "Weber",
        "Lindqvist"]  # fmt: skip


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def iban(country: str, length: int) -> str:
    bban = "".join(rng.choice(string.digits) for _ in range(length - 4))
    num = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(num) % 97:02d}{bban}"


def group4(s: str) -> str:
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


def rand(chars: str, n: int) -> str:
    return "".join(rng.choice(chars) for _ in range(n))


AZ09 = string.ascii_letters + string.digits


def values() -> dict[str, list[str]]:
    v: dict[str, list[str]] = {}
    v["email"] = [
        f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}{rng.randint(1, 99)}@{d}"
        for d in ["gmail.com", "example.org", "acme-corp.io", "mail.co.uk", "outlook.com",
                  "uni-heidelberg.de", "proton.me", "startup.ai", "yahoo.fr", "fastmail.fm",
                  "company.com.au", "web.de", "icloud.com", "hey.com", "zoho.eu"]
    ]  # fmt: skip
    v["phone"] = [
        f"+1 415 555 {rng.randint(1000, 9999)}",
        f"(212) 555-{rng.randint(1000, 9999)}",
        f"+44 20 7946 {rng.randint(1000, 9999)}",
        f"+49 30 {rng.randint(100000, 999999)}",
        f"646-555-{rng.randint(1000, 9999)}",
        f"+33 1 42 68 {rng.randint(10, 99)} {rng.randint(10, 99)}",
        f"+91 98765 {rng.randint(10000, 99999)}",
        f"+61 2 9374 {rng.randint(1000, 9999)}",
        f"312.555.{rng.randint(1000, 9999)}",
        f"+1-202-555-{rng.randint(1000, 9999)}",
        f"+34 912 345 {rng.randint(100, 999)}",
        f"+81 3 1234 {rng.randint(1000, 9999)}",
        f"(617) 555 {rng.randint(1000, 9999)}",
        f"+31 20 123 {rng.randint(1000, 9999)}",
        f"+39 06 6982 {rng.randint(1000, 9999)}",
    ]
    cards = [luhn_complete("4", 16) for _ in range(5)] + [
        luhn_complete(p, n)
        for p, n in [("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
                     ("6011", 16), ("65", 16), ("3530", 16), ("36", 14), ("4", 13)]
    ]  # fmt: skip
    v["credit_card"] = [group4(c) if i % 3 == 0 else c if i % 3 == 1 else "-".join(
        c[j : j + 4] for j in range(0, len(c), 4)) for i, c in enumerate(cards)]  # fmt: skip
    ibans = [
        iban(c, n)
        for c, n in [
            ("DE", 22),
            ("GB", 22),
            ("FR", 27),
            ("NL", 18),
            ("ES", 24),
            ("IT", 27),
            ("BE", 16),
            ("CH", 21),
            ("AT", 20),
            ("PL", 28),
            ("SE", 24),
            ("DK", 18),
            ("IE", 22),
            ("PT", 25),
            ("NO", 15),
        ]
    ]
    v["iban"] = [group4(x) if i % 2 else x for i, x in enumerate(ibans)]  # fmt: skip
    ssns = []
    while len(ssns) < 10:
        a, g, s = rng.randint(1, 899), rng.randint(1, 99), rng.randint(1, 9999)
        if a != 666:
            ssns.append(f"{a:03d}-{g:02d}-{s:04d}")
    v["national_id"] = ssns + ["AB 12 34 56 C", "CE123456A", "JT 98 76 54 B", "HP456789D",
                               "KM 11 22 33 A"]  # fmt: skip
    v["ip_address"] = [
        f"{rng.randint(11, 99)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        for _ in range(11)
    ] + ["2001:db8:85a3::8a2e:370:7334", "2a00:1450:4001:82b::200e", "fe80::1ff:fe23:4567:890a",
         "2606:4700:4700::1111"]  # fmt: skip
    v["secret"] = [
        "AKIA" + rand(string.ascii_uppercase + string.digits, 16),
        "ghp_" + rand(AZ09, 36),
        "sk-proj-" + rand(AZ09, 48),
        "sk-ant-api03-" + rand(AZ09, 40),
        "xoxb-" + rand(string.digits, 12) + "-" + rand(AZ09, 24),
        "sk_live_" + rand(AZ09, 24),
        "AIza" + rand(AZ09, 35),
        "hf_" + rand(AZ09, 34),
        "glpat-" + rand(AZ09, 20),
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIx" + rand(AZ09, 10) + "." + rand(AZ09, 30),
        "npm_" + rand(AZ09, 36),
        rand(AZ09, 40),  # an unknown high-entropy token, assigned
        "Tr0ub4dor&3x!9",  # a password, assigned
        "SG." + rand(AZ09, 22) + "." + rand(AZ09, 43),
        rand(AZ09, 32),  # a bare high-entropy token
    ]
    v["person"] = [f"{f} {last}" for f, last in zip(FIRST, LAST, strict=True)]
    return v


TEMPLATES = {
    "email": ["Please send the invoice to {v} by Friday.", "My email is {v}, reply there.",
              "Contact: {v}", "Forward the thread to {v} and cc me."],
    "phone": ["Call me back on {v} after 5pm.", "My number is {v}.",
              "Reach the on-call engineer at {v}."],
    "credit_card": ["Charge the card {v} for the annual plan.", "card number: {v} exp 09/28",
                    "I paid with {v} but was billed twice."],
    "iban": ["Refund to IBAN {v}, please.", "Our bank account is {v} (Sparkasse).",
             "Wire the deposit to {v} today."],
    "national_id": ["My SSN is {v} for the tax form.", "National insurance number {v}.",
                    "The applicant's id is {v}."],
    "ip_address": ["Login attempt from {v} was blocked.", "The server at {v} is down.",
                   "Whitelist {v} in the firewall."],
    "secret": ["Here is my key {v}, why does it fail?", "export API_KEY={v}",
               "password: {v}", "Use token={v} for the webhook."],
    "person": ["My name is {v} and I need help with my order.",
               "Please escalate this to {v} in billing.",
               "{v} called yesterday about the outage.",
               "The contract was signed by {v} last week."],
}  # fmt: skip

NEGATIVES = [
    "What is the capital of France?",
    "Order #48213 shipped on 2026-03-14 and should arrive in 3-5 days.",
    "Upgrade from version 1.2.3.4 to 2.0 fixes the bug.",
    "The meeting is at 12:30:45 UTC in room 101.",
    "Total: $1,234.56 including tax of 19%.",
    "Request id 550e8400-e29b-41d4-a716-446655440000 timed out.",
    "Commit 9fceb02d0ae598e95dc970b74767f19372d61af8 introduced the regression.",
    "Reset your password from the account settings page.",
    "The model used 1532 input tokens and 245 output tokens.",
    "Ticket 1234 5678 9012 3456 is not a card number.",
    "Use the token field in the request header.",
    "Localhost 127.0.0.1 is fine for development.",
    "Temperature was set to 0.7 and top_p to 0.95.",
    "Call the function get_user_by_id with id 42.",
    "Our office opens 9-5, Monday to Friday.",
    "The SKU ABC-12345-XYZ is out of stock.",
    "Python 3.11.4 and numpy 1.26.0 are required.",
    "Invoice INV-2026-00042 is due in 30 days.",
    "Chapter 12, pages 345-367, covers retrieval.",
    "The answer is 42, according to the documentation.",
    "Set max_tokens to 4096 and retry after 30 seconds.",
    "The password must contain at least 12 characters.",
    "Flight LH 400 departs at 13:45 from gate B44.",
    "Summarize the following article in three bullet points.",
    "Apple announced new products at the conference in Cupertino.",
    "Translate 'good morning' into Spanish and German.",
    "Latency p95 went from 820 ms to 1400 ms after the deploy.",
    "The dataset has 10,000 rows and 25 columns.",
    "Your API key is shown only once; store it safely.",
    "Error code 0x80070005: access denied.",
]


def main() -> None:
    rows = []
    for type_, vals in values().items():
        tpls = TEMPLATES[type_]
        for i, val in enumerate(vals):
            rows.append({"id": f"{type_}-{i:03d}", "type": type_, "value": val,
                         "text": tpls[i % len(tpls)].format(v=val)})  # fmt: skip
    for i, text in enumerate(NEGATIVES):
        rows.append({"id": f"none-{i:03d}", "type": None, "value": None, "text": text})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"wrote {len(rows)} cases to {OUT}")


if __name__ == "__main__":
    main()
