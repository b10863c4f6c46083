"""Serve one role over a DuckDB store for the routing tests (settings from SIGHTLINE_*).

`sightline serve --role ...` refuses the embedded store: several processes cannot share it. This
test server is the only process on its file, so it declares its store shared and runs the
role's routes exactly as a node of a cluster does.
"""

from __future__ import annotations

import uvicorn

from sightline.config import Settings
from sightline.server import create_app
from sightline.store import DuckDBStore


class OneProcessStore(DuckDBStore):
    shared = True


def main() -> None:
    settings = Settings()
    app = create_app(settings, store=OneProcessStore(settings.db_path))
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
