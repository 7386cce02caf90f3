#!/usr/bin/env bash
# Until the first production deployment, the schema lives in one initial migration made from the
# models. Run this after changing app/models/ (afterwards: add new migrations with `flask db migrate`).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f migrations/versions/*.py
DATABASE_URL="sqlite:///$tmp/empty.sqlite3" .venv/bin/flask --app app db migrate -m "initial schema" --rev-id 0001_initial
rm -rf "$tmp"
.venv/bin/ruff format -q migrations/versions || true
