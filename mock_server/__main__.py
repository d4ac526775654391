"""`python -m mock_server` runs the CLI."""

from __future__ import annotations

from mock_server.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
