#!/usr/bin/env bash
# Developer tool, for the unreleased schema only: regenerate the initial Alembic migration
# from the SQLAlchemy schema. Once a release exists, add new revisions instead.
set -euo pipefail
cd "$(dirname "$0")/.."
versions=src/dmp/store/migrations/versions
rm -f "$versions/0001_initial_schema.py"
tmp=$(mktemp -d)
# Later revisions (hand-written, e.g. 0002 audit protection) step aside while 0001 is generated.
mkdir "$tmp/later"
find "$versions" -maxdepth 1 -name '0*.py' -exec mv {} "$tmp/later/" \;
trap 'mv "$tmp"/later/*.py "$versions/" 2>/dev/null || true; rm -rf "$tmp"' EXIT
python3 - "$tmp" <<'PY'
import sys
from alembic import command
from dmp.store.db import alembic_config, make_engine
engine = make_engine(f"sqlite:///{sys.argv[1]}/gen.sqlite3")
command.revision(alembic_config(engine), message="initial schema", autogenerate=True, rev_id="0001")
PY
python3 -m ruff format -q src/dmp/store/migrations
python3 -m ruff check -q --fix src/dmp/store/migrations
