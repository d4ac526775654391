"""mock_server: a local emulator of the Replicate-style predictions API for FLUX image models."""

from __future__ import annotations

__version__ = "0.1.0"  # before the imports below: mock_server.routes.admin reads it

from mock_server.app import create_app
from mock_server.config import Settings

__all__ = ["Settings", "__version__", "create_app"]
