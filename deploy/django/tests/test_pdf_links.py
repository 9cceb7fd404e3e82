"""The adapter's storage links and the PDF-link migration command on a
fixture database holding every stored shape (tests/bolapp/fixture.py)."""

import io
import json

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError

from prt_gate_auth.links import Rules
from tests.bolapp.fixture import BUCKET, ROWS, seed
from tests.bolapp.links import pdf_link, stamped_link
from tests.bolapp.models import BOL


@pytest.fixture
def rows():
    BOL.objects.all().delete()
    seed()
    yield
    BOL.objects.all().delete()


def run(*args):
    out = io.StringIO()
    call_command("prt_gate_pdf_links", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def by_field(summary):
    return {f["field"]: f for f in summary["fields"]}


def snapshot():
    return {b.bol_number: (b.pdf_url, b.pdf_key, b.stamped_pdf_url, b.stamped_pdf_url_old) for b in BOL.objects.all()}


def test_storage_links_are_gate_paths():
    assert default_storage.url("bols/2025/PRT-2025-0002.pdf") == "/media/bols/2025/PRT-2025-0002.pdf"
    assert default_storage.url("/bol_pdfs/a b+c.pdf") == "/media/bol_pdfs/a%20b%2Bc.pdf"
    # The storage is still django-storages' S3 storage for writing.
    from storages.backends.s3 import S3Storage

    assert isinstance(default_storage._wrapped, S3Storage)


def test_shapes_are_recognised_and_never_widened():
    r = Rules(BUCKET)
    S3 = f"https://{BUCKET}.s3.us-east-2.amazonaws.com"
    assert r.classify("/media/bols/2025/X.pdf", None) == ("media_bols", "bols/2025/X.pdf")
    assert r.classify("/media/bol_pdfs/X.pdf", "") == ("media_bol_pdfs", "bol_pdfs/X.pdf")
    assert r.classify(f"{S3}/bols/2025/X.pdf", None) == ("s3_url", "bols/2025/X.pdf")
    assert r.classify(f"https://s3.us-east-2.amazonaws.com/{BUCKET}/bols/X.pdf?Signature=old", None) == ("s3_url", "bols/X.pdf")
    assert r.classify(f"https://{BUCKET}.s3.amazonaws.com/bols/a%20b.pdf", None) == ("s3_url", "bols/a b.pdf")
    assert r.classify("", "media/bols/2025/X.pdf") == ("stray_media_key", "bols/2025/X.pdf")
    assert r.classify("/media/media/bols/X.pdf", None) == ("media_other", "bols/X.pdf")
    assert r.classify("/media/bols/x", "bols/2025/X.pdf") == ("canonical", "bols/2025/X.pdf")
    assert r.classify("", None) == ("empty", None)
    for url, key in [
        ("https://other.s3.us-east-2.amazonaws.com/bols/X.pdf", None),
        (f"https://{BUCKET}.s3.us-east-2.amazonaws.com.evil.example/bols/X.pdf", None),
        (f"{S3}/private/X.pdf", None),
        ("/media/private/X.pdf", None),
        ("/media/bols/../private/X.pdf", None),
        ("/media/media/media/bols/X.pdf", None),
        ("", "private/X.pdf"),
        ("", "media/private/X.pdf"),
        ("ftp://x/bols/X.pdf", None),
    ]:
        assert r.classify(url, key) == ("unrecognized", None), (url, key)


def test_dry_run_counts_every_shape_and_changes_nothing(rows):
    before = snapshot()
    s = run("--dry-run")
    assert s["dry_run"] is True
    f = by_field(s)
    assert f["pdf_key"]["shapes"] == {
        "canonical": 1,
        "media_bol_pdfs": 1,
        "media_bols": 1,
        "s3_url": 1,
        "stray_media_key": 1,
        "unrecognized": 2,
    }
    assert f["pdf_key"]["changed"] == 4
    assert {u["pk"] for u in f["pdf_key"]["unrecognized"]} == set(
        BOL.objects.filter(bol_number__in=["PRT-2025-0098", "PRT-2025-0099"]).values_list("pk", flat=True)
    )
    assert f["stamped_pdf_url"]["shapes"] == {"canonical": 1, "empty": 5, "s3_url": 1}
    assert f["stamped_pdf_url"]["changed"] == 1
    assert s["changed"] == 5
    assert snapshot() == before


def test_apply_needs_a_journal(rows):
    with pytest.raises(CommandError, match="--journal"):
        run()


def test_apply_is_idempotent_keeps_old_values_and_links_still_name_the_same_objects(rows, tmp_path):
    before = snapshot()
    links_before = {b.bol_number: (pdf_link(b), stamped_link(b)) for b in BOL.objects.all()}
    journal = tmp_path / "journal.jsonl"
    s = run("--journal", str(journal))
    assert s["changed"] == 5
    after = snapshot()
    # pdf_key populated with the bare key; pdf_url untouched (old value preserved).
    for number, (url, key, stamped, target) in ROWS.items():
        assert after[number][0] == url, number
        if target:
            assert after[number][1] == target, number
        else:
            assert after[number][1] == key, f"{number}: an unrecognized row was changed"
    # The stamped S3 URL became a gate path; its old value went to the old field.
    assert after["PRT-2025-0002"][2] == "/media/bols/2025/PRT-2025-0002-stamped_a1B2c3D.pdf"
    assert after["PRT-2025-0002"][3] == before["PRT-2025-0002"][2]
    # Every old value is in the journal.
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    assert len(entries) == 5
    by = {(e["pk"], e["field"]): e for e in entries}
    stray = BOL.objects.get(bol_number="PRT-2025-0003")
    assert by[(stray.pk, "pdf_key")]["old"] == "media/bols/2025/PRT-2025-0003.pdf"
    assert by[(stray.pk, "pdf_key")]["new"] == "bols/2025/PRT-2025-0003.pdf"
    # Links: every row that worked before names the same object, as a gate path.
    for b in BOL.objects.all():
        target = ROWS[b.bol_number][3]
        if target:
            assert pdf_link(b) == "/media/" + target
            assert links_before[b.bol_number][0].replace("/media/media/", "/media/") == pdf_link(b)
    # Second run: nothing to do, nothing written.
    s2 = run("--journal", str(journal))
    assert s2["changed"] == 0
    assert by_field(s2)["pdf_key"]["shapes"]["canonical"] == 5
    assert snapshot() == after
    assert len(journal.read_text().splitlines()) == 5


def test_model_and_fields_from_options(rows, tmp_path):
    s = run("--model", "bolapp.BOL", "--key-field", "pdf_key", "--url-field", "pdf_url", "--dry-run")
    assert [f["field"] for f in s["fields"]] == ["pdf_key"]
    with pytest.raises(CommandError, match="no field"):
        run("--model", "bolapp.BOL", "--key-field", "nope", "--dry-run")
    with pytest.raises(CommandError, match="unknown model"):
        run("--model", "bolapp.Nope", "--key-field", "pdf_key", "--dry-run")
