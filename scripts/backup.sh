#!/usr/bin/env bash
# Back up voxeldb's database into a dated file and prune old backups.
#
#   scripts/backup.sh [-d DIR] [-k DAYS] [DATABASE_URL]
#
# PostgreSQL: pg_dump custom format (-Fc: compressed, restorable in parallel with
# `pg_restore -j N`, selectively by table). SQLite: `VACUUM INTO`, a consistent copy taken
# while the game keeps writing (a plain `cp` of a WAL-mode database can be torn).
# Redis is a cache and is never backed up. The URL defaults to $DATABASE_URL; DIR to
# $BACKUP_DIR or ./backups; DAYS (backups older than this are deleted) to $BACKUP_KEEP_DAYS or 7.
# The file is written under a temporary name and renamed when complete, so a crashed backup
# never looks like a good one. Prints the backup's path.
set -euo pipefail

dir="${BACKUP_DIR:-./backups}"
keep="${BACKUP_KEEP_DAYS:-7}"
usage() { echo "usage: $0 [-d DIR] [-k DAYS] [DATABASE_URL]" >&2; exit 2; }
while getopts ":d:k:h" opt; do
  case "$opt" in
    d) dir="$OPTARG" ;;
    k) keep="$OPTARG" ;;
    h) usage ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
url="${1:-${DATABASE_URL:-}}"
[ -n "$url" ] || { echo "backup: no database URL (argument or DATABASE_URL)" >&2; exit 2; }
[[ "$keep" =~ ^[0-9]+$ ]] || { echo "backup: -k DAYS must be a whole number, got '$keep'" >&2; exit 2; }

mkdir -p "$dir"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

case "$url" in
  postgresql*://* | postgres://*)
    # libpq understands postgresql:// URIs but not SQLAlchemy's "+driver" suffix.
    libpq_url="$(printf '%s' "$url" | sed -E 's#^postgres(ql)?(\+[A-Za-z0-9_]+)?://#postgresql://#')"
    name="$(printf '%s' "$libpq_url" | sed -E 's#^[^/]*//[^/]*/?##; s#\?.*$##')"
    prefix="voxeldb-${name:-postgres}-"
    final="$dir/$prefix$stamp.dump"
    tmp="$final.partial"
    trap 'rm -f "$tmp"' EXIT
    pg_dump --format=custom --no-owner --file="$tmp" --dbname="$libpq_url"
    ;;
  sqlite:///*)
    path="${url#sqlite:///}"
    path="${path%%\?*}"
    [ -f "$path" ] || { echo "backup: SQLite database '$path' does not exist" >&2; exit 2; }
    base="$(basename "$path")"
    prefix="voxeldb-${base%.*}-"
    final="$dir/$prefix$stamp.sqlite3"
    tmp="$final.partial"
    trap 'rm -f "$tmp"' EXIT
    if command -v sqlite3 >/dev/null 2>&1; then
      sqlite3 "$path" "VACUUM INTO '${tmp//\'/\'\'}'"
    else
      python3 - "$path" "$tmp" <<'PY'
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("VACUUM INTO ?", (sys.argv[2],))
conn.close()
PY
    fi
    ;;
  *)
    echo "backup: unsupported database URL (postgresql://... or sqlite:///file)" >&2
    exit 2
    ;;
esac

sync "$tmp" 2>/dev/null || true
mv "$tmp" "$final"
trap - EXIT
# Prune only this database's completed backups; -mtime +N means older than N whole days.
find "$dir" -maxdepth 1 -type f -name "$prefix*" ! -name '*.partial' -mtime +"$keep" -delete
echo "$final"
