#!/usr/bin/env bash
# Developer tool, for the unreleased schema only: regenerate the initial Alembic migration
# from the SQLAlchemy schema. Once a release exists, add new revisions instead.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f src/dmp/store/migrations/versions/0001_initial_schema.py
tmp=$(mktemp -d)
python3 - "$tmp" <<'PY'
import sys
from alembic import command
from dmp.store.db import alembic_config, make_engine
engine = make_engine(f"sqlite:///{sys.argv[1]}/gen.sqlite3")
command.revision(alembic_config(engine), message="initial schema", autogenerate=True, rev_id="0001")
PY
rm -rf "$tmp"
python3 -m ruff format -q src/dmp/store/migrations
python3 -m ruff check -q --fix src/dmp/store/migrations
