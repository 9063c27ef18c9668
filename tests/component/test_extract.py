"""Extraction of every supported format, odd encodings and hostile files, in process and through
the isolated worker pool (timeouts, crashes, memory limit)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import docx
import pytest

from memexfs.extract import Extracted, Extractor, Limits, extract_in_process, sniff


def make_pdf(lines: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF with one page of Helvetica text (no PDF writer needed)."""
    esc = [ln.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for ln in lines]
    ops = "BT /F1 11 Tf 72 720 Td 14 TL " + " ".join(f"({ln}) Tj T*" for ln in esc) + " ET"
    stream = ops.encode("latin-1")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if title is not None:
        objs.append(b"<< /Title (" + title.encode("latin-1") + b") >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    info = b" /Info %d 0 R" % len(objs) if title is not None else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objs) + 1, info, xref)
    return bytes(out)


def make_docx(path: Path, title: str = "") -> None:
    d = docx.Document()
    d.core_properties.title = title
    d.add_heading("Quarterly plan", level=1)
    d.add_paragraph("We will migrate the web shop in March.")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Item"
    table.cell(0, 1).text = "Cost"
    table.cell(1, 0).text = "Hosting"
    table.cell(1, 1).text = "$120.00"
    d.save(str(path))


INVOICE_LINES = ["Invoice", "Invoice #: ZX-4411", "Invoice date: March 3, 2024",
                 "Total: $310.00", "Payment not yet received."]


@pytest.mark.timeout(30)
def test_plain_markdown_and_code(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello plain world\n")
    (tmp_path / "b.md").write_text("intro\n\n# Garden plan\n\nTomatoes in May.\n")
    (tmp_path / "c.py").write_text("def late_fee(days):\n    return days * 2\n")
    a = extract_in_process(tmp_path / "a.txt")
    b = extract_in_process(tmp_path / "b.md")
    c = extract_in_process(tmp_path / "c.py")
    assert (a.status, a.doc_type, a.title, a.text) == ("ok", "text", "a", "hello plain world\n")
    assert (b.doc_type, b.title) == ("markdown", "Garden plan")
    assert (c.doc_type, c.meta["language"]) == ("code", "python")
    assert "late_fee" in c.text


@pytest.mark.timeout(30)
def test_html_main_text_without_boilerplate(tmp_path: Path) -> None:
    html = """<!doctype html><html><head><title>Order 77</title><script>var x=1;</script>
    <style>p{color:red}</style></head><body>
    <nav><a href='#'>Home</a> | <a href='#'>Log out</a></nav>
    <div class="cookie-banner">We use cookies to improve your experience.</div>
    <main><h1>Your order</h1><dl><dt>Order #</dt><dd>CL-9</dd></dl>
    <table><tr><td>Desk lamp</td><td>$30.00</td></tr></table><p>Thanks!</p></main>
    <footer>All rights reserved</footer></body></html>"""
    (tmp_path / "page.html").write_text(html)
    r = extract_in_process(tmp_path / "page.html")
    assert (r.status, r.doc_type, r.title) == ("ok", "html", "Order 77")
    assert "Order #: CL-9" in r.text
    assert "Desk lamp | $30.00" in r.text
    for junk in ("cookies", "Log out", "rights reserved", "var x", "color:red"):
        assert junk not in r.text


@pytest.mark.timeout(30)
def test_pdf_docx_csv_json(tmp_path: Path) -> None:
    (tmp_path / "inv.pdf").write_bytes(make_pdf(INVOICE_LINES, title="ZX invoice"))
    make_docx(tmp_path / "plan.docx", title="Plan 2024")
    (tmp_path / "t.csv").write_text("name,amount\nHosting,120\n\"Paper, A4\",9\n")
    (tmp_path / "d.json").write_text(json.dumps({"trip": {"city": "Kyoto", "days": [3, 4]}}))
    pdf = extract_in_process(tmp_path / "inv.pdf")
    assert (pdf.status, pdf.doc_type, pdf.title, pdf.meta["pages"]) == ("ok", "pdf", "ZX invoice",
                                                                         "1")
    assert "Invoice #: ZX-4411" in pdf.text
    d = extract_in_process(tmp_path / "plan.docx")
    assert (d.doc_type, d.title) == ("docx", "Plan 2024")
    assert "# Quarterly plan" in d.text  # headings become markdown so chunking sees sections
    assert "Hosting | $120.00" in d.text
    c = extract_in_process(tmp_path / "t.csv")
    assert (c.doc_type, c.meta["rows"]) == ("csv", "3")
    assert "Paper, A4 | 9" in c.text
    j = extract_in_process(tmp_path / "d.json")
    assert j.doc_type == "json"
    assert "trip.city: Kyoto" in j.text
    assert "trip.days[1]: 4" in j.text


@pytest.mark.timeout(30)
def test_email_with_pdf_and_docx_attachments(tmp_path: Path) -> None:
    make_docx(tmp_path / "plan.docx")
    msg = EmailMessage()
    msg["From"] = "Acme Billing <billing@acme-corp.example>"
    msg["To"] = "Dana <dana@example.org>"
    msg["Subject"] = "Invoice ZX-4411 from Acme"
    msg["Date"] = "Tue, 05 Mar 2024 10:00:00 +0100"
    msg.set_content("Hello Dana,\nyour invoice is attached.\n")
    msg.add_attachment(make_pdf(INVOICE_LINES), maintype="application", subtype="pdf",
                       filename="ZX-4411.pdf")
    msg.add_attachment((tmp_path / "plan.docx").read_bytes(), maintype="application",
                       subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
                       filename="plan.docx")
    msg.add_attachment(b"\x89PNG\r\n\x1a\n" + bytes(range(256)), maintype="image",
                       subtype="png", filename="logo.png")
    (tmp_path / "m.eml").write_bytes(msg.as_bytes())
    r = extract_in_process(tmp_path / "m.eml")
    assert (r.status, r.doc_type, r.title) == ("ok", "email", "Invoice ZX-4411 from Acme")
    assert r.meta["from_addr"] == "billing@acme-corp.example"
    assert r.meta["date_iso"].startswith("2024-03-05T10:00")
    assert r.meta["attachments"] == "ZX-4411.pdf, plan.docx, logo.png"
    assert "your invoice is attached" in r.text
    assert "--- Attachment: ZX-4411.pdf ---" in r.text
    assert "Invoice #: ZX-4411" in r.text
    assert "We will migrate the web shop" in r.text


@pytest.mark.timeout(30)
def test_encodings(tmp_path: Path) -> None:
    text = "Crème brûlée à la française, été 2023\n"
    (tmp_path / "latin.txt").write_bytes(text.encode("latin-1"))
    (tmp_path / "u16.txt").write_bytes(text.encode("utf-16"))  # with BOM
    (tmp_path / "u16le.txt").write_bytes(("Plain ASCII words " * 20).encode("utf-16-le"))
    assert extract_in_process(tmp_path / "latin.txt").text == text
    assert extract_in_process(tmp_path / "u16.txt").text == text
    r = extract_in_process(tmp_path / "u16le.txt")
    assert (r.status, r.doc_type) == ("ok", "text")
    assert r.text.startswith("Plain ASCII words")


@pytest.mark.timeout(30)
def test_content_beats_extension(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_text("remember to water the tomatoes\n")
    (tmp_path / "notes.txt").write_bytes(make_pdf(["secretly a pdf"]))
    (tmp_path / "real.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(64))
    j = extract_in_process(tmp_path / "photo.jpg")
    assert (j.status, j.doc_type) == ("ok", "text")
    assert "extension .jpg but content is text" in j.warnings
    p = extract_in_process(tmp_path / "notes.txt")
    assert (p.doc_type, p.mime) == ("pdf", "application/pdf")
    assert "secretly a pdf" in p.text
    img = extract_in_process(tmp_path / "real.jpg")
    assert (img.status, img.doc_type, img.mime) == ("metadata-only", "image", "image/jpeg")


@pytest.mark.timeout(30)
def test_empty_binary_corrupt_and_special(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blob.bin").write_bytes(os.urandom(50_000))
    pdf = make_pdf(INVOICE_LINES)
    (tmp_path / "cut.pdf").write_bytes(pdf[: len(pdf) * 4 // 10])
    os.mkfifo(tmp_path / "pipe.txt")
    e = extract_in_process(tmp_path / "empty.txt")
    assert (e.status, e.doc_type, e.text, e.title) == ("metadata-only", "empty", "", "empty")
    b = extract_in_process(tmp_path / "blob.bin")
    assert (b.status, b.doc_type) == ("metadata-only", "binary")
    c = extract_in_process(tmp_path / "cut.pdf")
    assert (c.status, c.doc_type) == ("failed", "pdf")
    assert c.error
    assert "PDF" in c.error
    assert "\n" not in c.error
    f = extract_in_process(tmp_path / "pipe.txt")  # must not block on open()
    assert f.status == "metadata-only"
    missing = extract_in_process(tmp_path / "gone.txt")
    assert missing.status == "failed"
    assert missing.error is not None


@pytest.mark.timeout(30)
def test_size_limits(tmp_path: Path) -> None:
    (tmp_path / "long.log").write_bytes(b"x," * 1_050_000)  # a 2 MB single line
    (tmp_path / "big.txt").write_bytes(b"word " * 4000)
    r = extract_in_process(tmp_path / "long.log", Limits(max_output_chars=1_000_000))
    assert (r.status, len(r.text)) == ("ok", 1_000_000)
    assert any("truncated" in w for w in r.warnings)
    big = extract_in_process(tmp_path / "big.txt", Limits(max_input_bytes=10_000))
    assert big.status == "metadata-only"
    assert "too big" in (big.error or "")


def test_sniff_email_without_extension(tmp_path: Path) -> None:
    p = tmp_path / "message"
    p.write_text("From: a@b.example\nTo: c@d.example\nSubject: hi\nDate: Mon, 1 Jan 2024 "
                 "10:00:00 +0000\n\nbody\n")
    assert sniff(p).doc_type == "email"


def _worker_pid(ex: Extractor) -> int:
    proc = ex._all[0].proc  # the test needs the live worker to stop or kill it
    assert proc is not None
    return proc.pid


@pytest.mark.expected_log("extraction timed out", "extract worker killed")
@pytest.mark.timeout(60)
def test_worker_pool_survives_hang_crash_and_memory(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("still works\n")
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"a" * (40 * 2**20))
    with Extractor(Limits(timeout_s=3.0, memory_mb=160)) as ex:
        first = ex.extract(good)
        assert (first.status, first.text) == ("ok", "still works\n")
        pid = _worker_pid(ex)

        # A hung worker (simulated by SIGSTOP) times out, is killed and replaced.
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        hung = ex.extract(good)
        assert hung.status == "failed"
        assert "timed out" in (hung.error or "")
        assert time.monotonic() - t0 < 10
        assert ex.extract(good).status == "ok"

        # A worker that dies mid-request gives a failed record; the next call gets a new one.
        pid = _worker_pid(ex)
        os.kill(pid, signal.SIGSTOP)
        threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
        crashed = ex.extract(good)
        assert crashed.status == "failed"
        assert "SIGKILL" in (crashed.error or "")
        assert ex.extract(good).text == "still works\n"

        # Over the address-space limit: out of memory is a status, not a dead mount.
        oom = ex.extract(huge)
        assert oom.status == "failed"
        assert "memory" in (oom.error or "")
        after = ex.extract(good)
        assert after.status == "ok"
        assert _worker_pid(ex) != pid


@pytest.mark.timeout(60)
def test_pool_is_thread_safe_and_matches_in_process(tmp_path: Path) -> None:
    files = []
    for i in range(8):
        p = tmp_path / f"n{i}.md"
        p.write_text(f"# Note {i}\n\nbody {i}\n")
        files.append(p)
    results: dict[int, Extracted] = {}
    with Extractor(workers=2) as ex:
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, ex.extract(
            files[i]))) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert [results[i].title for i in range(8)] == [f"Note {i}" for i in range(8)]
    assert results[3] == extract_in_process(files[3])
    with pytest.raises(RuntimeError):
        ex.extract(files[0])
