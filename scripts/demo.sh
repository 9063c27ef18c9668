#!/usr/bin/env bash
# MemexFS demo: mount a small vault, let it index, and use it from the shell.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
DEMO=${MEMEXFS_DEMO_DIR:-$(mktemp -d /tmp/memexfs-demo.XXXXXX)}  # one folder per run
VAULT=$DEMO/vault
MNT=$DEMO/mnt

cleanup() {
  if grep -qs " $MNT fuse.memexfs " /proc/mounts; then "$BIN/memexfs" umount "$MNT" || true; fi
}
trap cleanup EXIT

if [ -t 1 ]; then BOLD=$'\033[1m'; PLAIN=$'\033[0m'; else BOLD=""; PLAIN=""; fi
# Show a command as it could be pasted into a shell (each word quoted when it needs it).
step() { printf '\n%s$' "$BOLD"; printf ' %q' "$@"; printf '%s\n' "$PLAIN"; }
note() { printf '\n%s$ %s%s\n' "$BOLD" "$*" "$PLAIN"; }
run() { step "$@"; "$@"; }

rm -rf "$VAULT" "$MNT"
mkdir -p "$MNT"
cp -r demo/sample-vault "$VAULT"

run "$BIN/memexfs" mount "$VAULT" "$MNT" --today 2024-01-15
run "$BIN/memexfs" status "$MNT" --wait

note "ls $MNT   # the real files, plus q/, related/, topics/ and the other knowledge folders"
ls "$MNT"
run cat "$MNT/Finance/Invoices/acme-2023-0412.txt"
note "grep -rl Invoice $MNT/Finance   # plain shell tools work on the real tree"
grep -rl "Invoice" "$MNT/Finance"

Q="$MNT/q/unpaid invoices from acme last quarter"
run ls -lU "$Q/"
note "cat '$Q/.results'   # rank, score, path, snippet"
cat "$Q/.results"
note "cat '$Q/.query'   # how the folder's name was read"
cat "$Q/.query"
run ls -U "$MNT/q/notes about how plants make energy from light/"
run ls -U "$MNT/q/overdue invoices/"
run ls -U "$MNT/related/Notes/Biology/photosynthesis.md/"
first=$(ls -U "$Q" | head -n 1)
if [ -n "$first" ]; then run head -n 3 "$Q/$first"; fi

note "a new invoice is searchable seconds later"
printf 'ACME CORPORATION\nInvoice INV-2023-0431\nIssue date: 2023-12-01\nDue date: 2023-12-31\nTotal due: $990.00\nStatus: unpaid\n' \
  > "$MNT/Finance/Invoices/acme-2023-0431.txt"
"$BIN/memexfs" status "$MNT" --wait >/dev/null
run ls "$Q/"
run getfattr --absolute-names -n user.memex.status "$MNT/Finance/Invoices/acme-2023-0431.txt"

run mkdir "$MNT/q/biology notes"
run ls "$MNT/q"

note "the vault by meaning: topics, summaries, connections"
run ls "$MNT/topics"
run cat "$MNT/summary/Notes/Biology/photosynthesis.md"
run ls -U "$MNT/connect/industrial revolution/economics/"

run "$BIN/memexfs" search "$MNT" "industrial history" -k 3
run "$BIN/memexfs" umount "$MNT"
run "$BIN/memexfs" graph "$VAULT" -o "$DEMO/graph.html"
trap - EXIT
echo
echo "demo finished: vault left in $VAULT, its graph in $DEMO/graph.html"
