"""The fixture rows: every stored shape of the real data (docs/media.md),
plus rows the migration must leave alone. `ROWS` maps bol_number →
(pdf_url, pdf_key, stamped_pdf_url, object key the links must reach or None)."""

BUCKET = "primetrade-documents"
S3 = f"https://{BUCKET}.s3.us-east-2.amazonaws.com"

ROWS = {
    # pdf_url is a gate path under bols/ (rows written after the media fix)
    "PRT-2025-0001": ("/media/bols/2025/PRT-2025-0001.pdf", None, "", "bols/2025/PRT-2025-0001.pdf"),
    # legacy layout
    "PRT-2024-0100": ("/media/bol_pdfs/PRT-2024-0100.pdf", "", "", "bol_pdfs/PRT-2024-0100.pdf"),
    # permanent unsigned S3 URL from before the fix; stamped copy likewise
    "PRT-2025-0002": (
        f"{S3}/bols/2025/PRT-2025-0002.pdf",
        None,
        f"{S3}/bols/2025/PRT-2025-0002-stamped_a1B2c3D.pdf",
        "bols/2025/PRT-2025-0002.pdf",
    ),
    # pdf_key with the stray media/ prefix (rows that were stored locally)
    "PRT-2025-0003": ("/media/bols/2025/PRT-2025-0003.pdf", "media/bols/2025/PRT-2025-0003.pdf", "", "bols/2025/PRT-2025-0003.pdf"),
    # already canonical, stamped as a gate path
    "PRT-2025-0004": (
        "/media/bols/2025/PRT-2025-0004.pdf",
        "bols/2025/PRT-2025-0004.pdf",
        "/media/bols/2025/PRT-2025-0004-stamped.pdf",
        "bols/2025/PRT-2025-0004.pdf",
    ),
    # never widened: another bucket, a key outside the allowed prefixes
    "PRT-2025-0098": ("https://other-bucket.s3.us-east-2.amazonaws.com/bols/2025/PRT-2025-0098.pdf", None, "", None),
    "PRT-2025-0099": ("/media/private/PRT-2025-0099.pdf", None, "", None),
}

STAMPED = {
    "PRT-2025-0002": "bols/2025/PRT-2025-0002-stamped_a1B2c3D.pdf",
    "PRT-2025-0004": "bols/2025/PRT-2025-0004-stamped.pdf",
}


def seed():
    from tests.bolapp.models import BOL

    for number, (url, key, stamped, _) in ROWS.items():
        BOL.objects.update_or_create(
            bol_number=number, defaults={"pdf_url": url, "pdf_key": key, "stamped_pdf_url": stamped}
        )


def pdf_bytes(key):
    """Distinct bytes per object, so a link reaching the wrong object fails."""
    return b"%PDF-1.4\n% " + key.encode() + b"\n%%EOF\n"
