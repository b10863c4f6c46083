"""A synthetic support-bot corpus by topic, for drift tests (prompts built from templates)."""

from __future__ import annotations

import itertools
import random

_OPENERS = ["", "Hi, ", "Quick question: ", "Please help: "]

_TOPICS: dict[str, list[str]] = {
    "password": [
        "how do I reset my password{x}?",
        "I forgot my password and cannot log in{x}.",
        "the password reset email never arrived{x}.",
        "can I change my password from the mobile app{x}?",
        "my account is locked after too many login attempts{x}.",
    ],
    "billing": [
        "why was my credit card charged twice{x}?",
        "what is your refund policy for annual plans{x}?",
        "where can I download my invoices{x}?",
        "can I switch from monthly to yearly billing{x}?",
        "my card was declined when upgrading{x}.",
    ],
    "api": [
        "how many API requests per minute are allowed{x}?",
        "I keep getting a 429 rate limit error from the API{x}.",
        "how do I verify webhook signatures{x}?",
        "where do I create a new API token{x}?",
        "the REST endpoint returns a 500 error{x}.",
    ],
    "export": [
        "can I export my data to CSV{x}?",
        "how do I download a backup of all my projects{x}?",
        "the export job has been stuck for hours{x}.",
        "is there a way to export reports as PDF{x}?",
        "how do I migrate my data to another workspace{x}?",
    ],
    "team": [
        "how do I add a teammate to my workspace{x}?",
        "can guests see every project{x}?",
        "how do I remove a user who left the company{x}?",
        "what roles can I give to members{x}?",
        "how do I transfer ownership of the workspace{x}?",
    ],
    # the topic that appears only after a change: travel bookings, which the bot never handled
    "travel": [
        "can you book me a flight to Paris next Tuesday{x}?",
        "I need a hotel room in Rome for three nights{x}.",
        "what is the cheapest train from Berlin to Munich{x}?",
        "please cancel my car rental reservation{x}.",
        "which airlines fly direct from Lisbon to New York{x}?",
    ],
}
_SUFFIXES = ["", " today", " for my company", " again"]

TOPICS = list(_TOPICS)


def prompts(topic: str) -> list[str]:
    """Every prompt of a topic (template × opener × suffix)."""
    out = []
    for t, o, x in itertools.product(_TOPICS[topic], _OPENERS, _SUFFIXES):
        s = t.format(x=x)
        out.append(o + (s[0].upper() + s[1:] if not o else s))
    return out


def sample(mix: dict[str, float], n: int, rng: random.Random) -> list[str]:
    """``n`` prompts drawn from topics in proportion ``mix``."""
    topics = list(mix)
    weights = [mix[t] for t in topics]
    pools = {t: prompts(t) for t in topics}
    return [rng.choice(pools[t]) for t in rng.choices(topics, weights, k=n)]


BASE_MIX = {"password": 0.3, "billing": 0.25, "api": 0.2, "export": 0.15, "team": 0.1}
SHIFTED_MIX = {**{k: v * 0.6 for k, v in BASE_MIX.items()}, "travel": 0.4}
