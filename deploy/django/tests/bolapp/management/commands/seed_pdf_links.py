from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand

from tests.bolapp.fixture import ROWS, STAMPED, pdf_bytes, seed


class Command(BaseCommand):
    help = "Create the fixture rows; with --upload, write every PDF through default_storage."

    def add_arguments(self, parser):
        parser.add_argument("--upload", action="store_true")

    def handle(self, *args, **opts):
        seed()
        if opts["upload"]:
            keys = [k for *_, k in ROWS.values() if k] + list(STAMPED.values())
            for key in keys:
                saved = default_storage.save(key, ContentFile(pdf_bytes(key)))
                assert saved == key, (saved, key)
            self.stdout.write(f"uploaded {len(keys)}")
