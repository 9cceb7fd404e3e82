"""A stand-in for the application's BOL table: only the PDF link fields,
with the types and shapes the real data has (docs/media.md)."""

from django.db import models


class BOL(models.Model):
    bol_number = models.CharField(max_length=30, unique=True)
    pdf_url = models.CharField(max_length=1000, blank=True)
    pdf_key = models.CharField(max_length=500, blank=True, null=True)
    stamped_pdf_url = models.CharField(max_length=1000, blank=True)
    # Receives the previous stamped_pdf_url (the command's `old_field`).
    stamped_pdf_url_old = models.CharField(max_length=1000, blank=True)

    class Meta:
        app_label = "bolapp"
