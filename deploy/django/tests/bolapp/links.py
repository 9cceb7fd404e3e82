"""How the application turns a BOL row into the link in its API answers,
restated for the tests: the key through the storage first, then a key found
in a stored S3 URL through the storage, then the stored value itself. The
stamped link: an S3 URL's key through the storage, else the stored value
(leading slash dropped) through the storage."""

from django.core.files.storage import default_storage

S3_MARK = "amazonaws.com/"


def pdf_link(bol):
    if bol.pdf_key:
        return default_storage.url(bol.pdf_key)
    if S3_MARK in bol.pdf_url:
        return default_storage.url(bol.pdf_url.split(S3_MARK, 1)[1].split("?", 1)[0])
    return bol.pdf_url or None


def stamped_link(bol):
    v = bol.stamped_pdf_url
    if not v:
        return None
    if S3_MARK in v:
        return default_storage.url(v.split(S3_MARK, 1)[1].split("?", 1)[0])
    return default_storage.url(v.lstrip("/"))
