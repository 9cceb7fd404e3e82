"""``manage.py prt_gate_pdf_links``: stored PDF links → the canonical form.

For every configured field set (a model, its key field and/or URL field):

* with a key field: the key field gets the bare object key
  (``bols/2025/X.pdf``), derived from the key itself (a stray ``media/``
  dropped) or, when empty, from the URL field; the URL field is **kept as
  it is** (the old value stays readable, and the application prefers the
  key when rendering a link);
* with only a URL field (e.g. ``stamped_pdf_url``): it is rewritten to
  ``/media/<key>``.

Every value changed is appended to ``--journal`` (JSON lines: model, pk,
field, old, new) before the row is saved, and, when the field set names an
``old_field``, copied there if that field is still empty. ``--dry-run``
prints the counts per shape (``prt_gate_auth.links``) and changes nothing.
Running it again changes nothing (idempotent). Values it does not recognise
are listed and left alone.

Configuration, in settings or on the command line::

    PRT_GATE_PDF_LINKS = [
        {"model": "bol_system.BOL", "key_field": "pdf_key", "url_field": "pdf_url"},
        {"model": "bol_system.BOL", "url_field": "stamped_pdf_url"},
    ]
    PRT_GATE_MEDIA_BUCKET = "primetrade-documents"   # else AWS_STORAGE_BUCKET_NAME
    PRT_GATE_MEDIA_ALLOWED_PREFIXES = ["bols/", "bol_pdfs/"]  # = media.allowed_prefixes
    PRT_GATE_MEDIA_STRIP_PREFIXES = ["media/"]                # = media.strip_prefixes

    manage.py prt_gate_pdf_links --model bol_system.BOL --key-field pdf_key --url-field pdf_url --dry-run
"""

import json
from collections import Counter

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from prt_gate_auth.links import DEFAULT_ALLOWED, DEFAULT_STRIP, Rules


class Command(BaseCommand):
    help = "Rewrite stored PDF links (pdf_key / pdf_url) to the form prt-gate serves."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count per shape, change nothing")
        parser.add_argument("--journal", help="JSON-lines file the old values are appended to (required to apply)")
        parser.add_argument("--model", help="app_label.Model (instead of settings.PRT_GATE_PDF_LINKS)")
        parser.add_argument("--key-field")
        parser.add_argument("--url-field")
        parser.add_argument("--old-field", help="field that receives the old value when empty")
        parser.add_argument("--bucket", help="bucket whose S3 URLs are recognised")
        parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    def handle(self, *args, **opts):
        specs = self.specs(opts)
        bucket = opts["bucket"] or getattr(settings, "PRT_GATE_MEDIA_BUCKET", None) or getattr(
            settings, "AWS_STORAGE_BUCKET_NAME", None
        )
        rules = Rules(
            bucket,
            getattr(settings, "PRT_GATE_MEDIA_ALLOWED_PREFIXES", DEFAULT_ALLOWED),
            getattr(settings, "PRT_GATE_MEDIA_STRIP_PREFIXES", DEFAULT_STRIP),
            getattr(settings, "PRT_GATE_MEDIA_URL", "/media/"),
        )
        dry = opts["dry_run"]
        if not dry and not opts["journal"]:
            raise CommandError("--journal FILE is required to apply changes (old values are kept there); or --dry-run")
        journal = None if dry else open(opts["journal"], "a", encoding="utf-8")
        summary = {"dry_run": dry, "fields": []}
        try:
            for spec in specs:
                summary["fields"].append(self.run_spec(spec, rules, dry, journal))
        finally:
            if journal:
                journal.close()
        summary["changed"] = sum(f["changed"] for f in summary["fields"])
        if opts["json"]:
            self.stdout.write(json.dumps(summary, sort_keys=True))
        else:
            self.report(summary)

    def specs(self, opts):
        if opts["model"]:
            spec = {"model": opts["model"], "key_field": opts["key_field"], "url_field": opts["url_field"]}
            if opts["old_field"]:
                spec["old_field"] = opts["old_field"]
            specs = [spec]
        else:
            specs = list(getattr(settings, "PRT_GATE_PDF_LINKS", []))
        if not specs:
            raise CommandError("nothing configured: set PRT_GATE_PDF_LINKS or pass --model and --key-field/--url-field")
        for s in specs:
            if not s.get("key_field") and not s.get("url_field"):
                raise CommandError(f"{s.get('model')}: needs key_field and/or url_field")
            try:
                model = apps.get_model(s["model"])
            except (LookupError, ValueError, KeyError) as e:
                raise CommandError(f"unknown model {s.get('model')!r}: {e}")
            names = {f.name for f in model._meta.get_fields()}
            for f in ("key_field", "url_field", "old_field"):
                if s.get(f) and s[f] not in names:
                    raise CommandError(f"{s['model']} has no field {s[f]!r}")
        return specs

    def run_spec(self, spec, rules, dry, journal):
        model = apps.get_model(spec["model"])
        key_f, url_f, old_f = spec.get("key_field"), spec.get("url_field"), spec.get("old_field")
        target_f = key_f or url_f
        shapes, changed, unrecognized = Counter(), 0, []
        for row in model.objects.order_by("pk").iterator():
            url = getattr(row, url_f) if url_f else None
            old = getattr(row, target_f)
            shape, key = rules.classify(url, old) if key_f else rules.classify(url, None)
            new = key if key_f else (rules.canonical_url(key) if key else None)
            if new is not None and new == old:
                shape = "canonical"
            shapes[shape] += 1
            if shape == "unrecognized":
                unrecognized.append({"pk": row.pk, "value": old or url})
            if new is None or new == old:
                continue
            changed += 1
            if dry:
                continue
            with transaction.atomic():
                journal.write(
                    json.dumps(
                        {"model": spec["model"], "pk": row.pk, "field": target_f, "old": old, "new": new},
                        sort_keys=True,
                    )
                    + "\n"
                )
                journal.flush()
                fields = [target_f]
                setattr(row, target_f, new)
                if old_f and old and not getattr(row, old_f):
                    setattr(row, old_f, old)
                    fields.append(old_f)
                row.save(update_fields=fields)
        return {
            "model": spec["model"],
            "field": target_f,
            "shapes": dict(sorted(shapes.items())),
            "changed": changed,
            "unrecognized": unrecognized,
        }

    def report(self, summary):
        verb = "would change" if summary["dry_run"] else "changed"
        for f in summary["fields"]:
            self.stdout.write(f"{f['model']}.{f['field']}:")
            for shape, n in f["shapes"].items():
                self.stdout.write(f"  {shape:<16} {n}")
            self.stdout.write(f"  {verb}: {f['changed']}")
            for u in f["unrecognized"]:
                self.stdout.write(f"  left alone (unrecognized): pk={u['pk']} {u['value']!r}")
        self.stdout.write(f"total {verb}: {summary['changed']}")
