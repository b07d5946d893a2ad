"""Small PDFs for the ingest tests: one good two-page PDF, built by hand (so it does not depend on pypdf's
writer API), and copies of it damaged the way real files get damaged (a few bytes lost)."""

from __future__ import annotations

__all__ = ["GOOD_PDF", "GOOD_PDF_TEXT", "NO_TRAILER_DICT", "NO_XREF_SUBSECTION", "make_pdf"]


def make_pdf(pages: list[str]) -> bytes:
    """A small valid PDF (Helvetica text, one line per page) with a correct xref table."""
    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def damaged(pdf: bytes, old: bytes, new: bytes) -> bytes:
    assert old in pdf
    return pdf.replace(old, new, 1)


GOOD_PDF_TEXT = "Hello PDF world\n\nSecond page here"
GOOD_PDF = make_pdf(["Hello PDF world", "Second page here"])
#: the trailer lost its ``<< /Size``: pypdf 7 raises AttributeError
NO_TRAILER_DICT = damaged(GOOD_PDF, b"trailer\n<< /Size", b"trailer")
#: the xref table lost its ``0 8`` subsection header: pypdf 7 raises LimitReachedError
NO_XREF_SUBSECTION = damaged(GOOD_PDF, b"xref\n0 8\n", b"xref")
