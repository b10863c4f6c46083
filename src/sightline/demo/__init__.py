"""A simulated RAG support application that sends realistic traces to a Sightline server."""

from sightline.demo._app import SCENARIOS, Scenario, SupportBot, start_demo_traffic

__all__ = [
    "SCENARIOS",
    "Scenario",
    "SupportBot",
    "start_demo_traffic",
]
