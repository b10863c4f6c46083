"""A simulated RAG support application that sends realistic traces to a Sightline server."""

from sightline.demo._app import SupportBot, start_demo_traffic

__all__ = ["SupportBot", "start_demo_traffic"]
