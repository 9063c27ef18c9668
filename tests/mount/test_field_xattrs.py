"""Extracted fields and extraction warnings, shown through a real mount (issue 12).

``user.memex.kind`` / ``vendor`` / ``amount`` / ``currency`` / ``due`` / ``date`` / ``payment`` on
real files, answered from the indexer's memory (checked with the store process stopped), loaded
again from the catalog at the next mount; the fields on ``.results``' comment lines and in
``memexfs search --json`` (mounted and not); a PDF with no text layer says so in
``user.memex.status``/``error``/``warnings`` and in the stats.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.mounting import Mount, memexfs_cmd, mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(600)]

INVOICE = """ACME Corporation
Invoice #INV-2023-0412
Invoice date: 2023-10-02
Due date: 2023-11-01
Amount due: $1,234.50
Status: unpaid
Thank you for choosing Acme for your pelican harbour lanterns.
"""
INVOICE_FIELDS = {"kind": b"invoice", "vendor": b"acme", "amount": b"1234.50",
                  "currency": b"USD", "due": b"2023-11-01", "date": b"2023-10-02",
                  "payment": b"unpaid"}
NOTE = "Planting tomatoes along the south fence again this spring; the basil goes in pots.\n"


def pdf_without_text() -> bytes:
    """A valid one-page PDF with nothing on the page: what a scan without OCR reads as."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
               b"<< /Length 0 >>\nstream\n\nendstream"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


JSON_FIELDS = {"kind": "invoice", "vendor": "acme", "amount": 1234.5, "currency": "USD",
               "due": "2023-11-01", "date": "2023-10-02", "payment": "unpaid"}


def search_json(where: Path) -> dict[str, object]:
    """The renamed invoice's fields in ``memexfs search --json``."""
    out = subprocess.run(memexfs_cmd("search", str(where), "acme invoice pelican lanterns",
                                     "--json"), capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    rows = [r for r in json.loads(out.stdout)["results"] if r["path"] == "Finance/renamed.txt"]
    assert rows, out.stdout
    return dict(rows[0]["fields"])


def xattr(path: Path, name: str) -> bytes:
    return os.getxattr(path, f"user.memex.{name}")


def enodata(fn: Callable[[], object]) -> bool:
    try:
        fn()
    except OSError as exc:
        return exc.errno == errno.ENODATA
    return False


def store_process(m: Mount) -> int:
    """pid of the daemon's store process (its child running the store module)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if f"\nPPid:\t{m.proc.pid}\n" in status and b"memexfs.store" in cmdline:
            return int(entry)
    raise AssertionError("the daemon has no store process")


def test_extracted_fields_are_xattrs_of_real_files(tmp_path: Path) -> None:
    vault, mnt = tmp_path / "vault", tmp_path / "mnt"
    with mounted(vault, mnt, "--no-watch") as m:
        (m.mnt / "Finance").mkdir()
        invoice, note, scan = m.mnt / "Finance" / "acme-0412.txt", m.mnt / "garden.md", \
            m.mnt / "scan.pdf"
        invoice.write_text(INVOICE)
        note.write_text(NOTE)
        scan.write_bytes(pdf_without_text())
        m.wait_idle(timeout=240)

        assert {name: xattr(invoice, name) for name in INVOICE_FIELDS} == INVOICE_FIELDS
        listed = os.listxattr(invoice)
        assert {f"user.memex.{name}" for name in INVOICE_FIELDS} <= set(listed), listed
        assert len(listed) == len(set(listed))
        # a note has a kind and nothing else: the rest is absent, and not listed
        assert xattr(note, "kind") == b"note"
        assert enodata(lambda: xattr(note, "vendor"))
        assert enodata(lambda: xattr(note, "due"))
        assert not {"user.memex.vendor", "user.memex.amount", "user.memex.due",
                    "user.memex.payment", "user.memex.warnings"} & set(os.listxattr(note))
        # the index's, not the file's: read-only
        with pytest.raises(PermissionError):
            os.setxattr(invoice, "user.memex.vendor", b"forged")
        with pytest.raises(PermissionError):
            os.setxattr(note, "user.memex.vendor", b"forged")
        with pytest.raises(PermissionError):
            os.removexattr(invoice, "user.memex.amount")
        assert xattr(invoice, "vendor") == b"acme"

        # a PDF without a text layer: found by name only, and it says why
        assert xattr(scan, "status") == b"metadata-only"
        assert b"no text layer" in xattr(scan, "error")
        assert b"no text layer" in xattr(scan, "warnings")
        assert "user.memex.warnings" in os.listxattr(scan)
        stats = m.stats()
        assert stats["warnings_total"] == 1
        assert any("no text layer" in w for w in stats["warnings"]["scan.pdf"])

        renamed = m.mnt / "Finance" / "renamed.txt"
        os.rename(invoice, renamed)
        m.wait_idle(timeout=120)
        assert xattr(renamed, "vendor") == b"acme"

        # answered from memory: the store process stopped does not stall a getxattr
        pid = store_process(m)
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            assert xattr(renamed, "due") == b"2023-11-01"
            assert xattr(scan, "warnings")
            assert time.monotonic() - t0 < 1.0
        finally:
            os.kill(pid, signal.SIGCONT)

        # .results: four columns per row, the fields on the comment line after it
        lines = (m.mnt / "q" / "acme invoice pelican lanterns" / ".results").read_text()
        rows = lines.splitlines()
        at = [i for i, line in enumerate(rows) if line.split("\t")[2:3] == ["Finance/renamed.txt"]]
        assert at, lines
        row = rows[at[0]].split("\t")
        assert len(row) == 4
        # the cosine comes first (issue 10: column 2 is the ranking score), then the fields
        head, cosine, fields = rows[at[0] + 1].split("\t", 2)
        assert head == f"# {row[0]}"
        assert cosine.startswith("cosine=")
        assert 0.0 < float(cosine[7:]) <= 1.0
        assert fields == ("kind=invoice\tvendor=acme\tamount=1234.50\tcurrency=USD\t"
                          "due=2023-11-01\tdate=2023-10-02\tpayment=unpaid")
        assert search_json(m.mnt) == JSON_FIELDS  # through the mount's .results

    # the next mount loads fields and warnings from the catalog (nothing is extracted again)
    with mounted(vault, mnt, "--no-watch") as m:
        st = m.wait_idle(timeout=240)
        assert st["embedded_texts"] == 0
        renamed = m.mnt / "Finance" / "renamed.txt"
        assert {name: xattr(renamed, name) for name in INVOICE_FIELDS} == INVOICE_FIELDS
        assert xattr(m.mnt / "garden.md", "kind") == b"note"
        assert b"no text layer" in xattr(m.mnt / "scan.pdf", "warnings")
        assert m.stats()["warnings_total"] == 1
    assert search_json(vault) == JSON_FIELDS  # unmounted: from the hit's payload
