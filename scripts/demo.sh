#!/usr/bin/env bash
# MemexFS demo: mount a small vault, let it index, and use it from the shell.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DEMO=${MEMEXFS_DEMO_DIR:-/tmp/memexfs-demo}
VAULT=$DEMO/vault
MNT=$DEMO/mnt

cleanup() {
  if grep -qs " $MNT fuse.memexfs " /proc/mounts; then $BIN/memexfs umount "$MNT" || true; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; "$@"; }

rm -rf "$DEMO"
mkdir -p "$MNT"
cp -r demo/sample-vault "$VAULT"

run $BIN/memexfs mount "$VAULT" "$MNT" --today 2024-01-15
run $BIN/memexfs status "$MNT" --wait

step "ls $MNT   # the real files, plus q/ and related/"
ls "$MNT"
run cat "$MNT/Finance/Invoices/acme-2023-0412.txt"
step "grep -rl 'Invoice' $MNT/Finance   # plain shell tools work on the real tree"
grep -rl "Invoice" "$MNT/Finance"

Q="$MNT/q/unpaid invoices from acme last quarter"
step "ls -lU '$Q/'   # ranked: best first"
ls -lU "$Q/"
step "cat '$Q/.results'   # rank, score, path, snippet"
cat "$Q/.results"
step "ls -U '$MNT/q/notes about how plants make energy from light/'"
ls -U "$MNT/q/notes about how plants make energy from light/"
step "ls -U '$MNT/q/overdue invoices/'   # a status word becomes a filter"
ls -U "$MNT/q/overdue invoices/"
step "ls -U '$MNT/related/Notes/Biology/photosynthesis.md/'"
ls -U "$MNT/related/Notes/Biology/photosynthesis.md/"
first=$(ls -U "$Q" | head -n 1)
step "head -n 3 '$Q/$first'   # results are symlinks to the real files"
if [ -n "$first" ]; then head -n 3 "$Q/$first"; fi

step "echo 'Invoice from Acme ... unpaid' > $MNT/Finance/Invoices/acme-2023-0431.txt   # a new file is searchable seconds later"
printf 'ACME CORPORATION\nInvoice INV-2023-0431\nIssue date: 2023-12-01\nDue date: 2023-12-31\nTotal due: $990.00\nStatus: unpaid\n' \
  > "$MNT/Finance/Invoices/acme-2023-0431.txt"
$BIN/memexfs status "$MNT" --wait >/dev/null
ls "$Q/"
step "getfattr -n user.memex.status $MNT/Finance/Invoices/acme-2023-0431.txt"
getfattr --absolute-names -n user.memex.status "$MNT/Finance/Invoices/acme-2023-0431.txt"

run mkdir "$MNT/q/biology notes"
step "ls $MNT/q   # saved queries"
ls "$MNT/q"
run $BIN/memexfs search "$VAULT" "industrial history" -k 3 --json
run $BIN/memexfs umount "$MNT"
trap - EXIT
echo
echo "demo finished: vault left in $VAULT"
