"""The fleet's web face: HTML pages, the ``/api/v1`` JSON API and ``/metrics``.

``create_app(fleet, tokens=...)`` builds the FastAPI application ``kdx serve`` runs; it
reads and changes the fleet only through the ``kdx.fleet.service.Fleet`` facade, so the
same pages serve the embedded fleet and a scaled-out one.
"""

from kdx.fleet.web.app import create_app

__all__ = ["create_app"]
