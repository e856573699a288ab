"""Print the URL of a fresh PostgreSQL database for scripts/smoke_install, keep it (and a
throwaway cluster, where no server runs) alive until SIGTERM, then drop it."""

from __future__ import annotations

import os
import signal
import sys

from dmp.devtools.pgcluster import fresh_database, postgres_url


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run atexit: stops a throwaway cluster
    server = postgres_url()
    name = f"dmp_smoke_{os.getpid()}"
    url = fresh_database(server, name)
    print(url, flush=True)
    try:
        signal.pause()
    finally:
        import psycopg

        dsn = server.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
