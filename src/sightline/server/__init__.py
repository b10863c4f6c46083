"""The Sightline server: OTLP receivers, REST API and Prometheus metrics."""

from sightline.server._app import create_app

__all__ = ["create_app"]
