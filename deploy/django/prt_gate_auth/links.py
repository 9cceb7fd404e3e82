"""Stored PDF links → the object key they name (pure; no Django models).

Shapes found in the application's data (docs/media.md), each with its label
in the management command's counts:

``canonical``
    the key field holds a bare key under an allowed prefix
    (``bols/2025/X.pdf``): nothing to do.
``stray_media_key``
    the key field holds ``media/`` + a key (rows that were stored locally);
    it renders as ``/media/media/…``.
``media_bols`` / ``media_bol_pdfs`` / ``media_other``
    no key, the URL field holds a gate path ``/media/bols/…``,
    ``/media/bol_pdfs/…`` (or ``/media/media/…``).
``s3_url``
    no key, the URL field holds a permanent S3 URL of the configured bucket
    (virtual-hosted ``https://<bucket>.s3.<region>.amazonaws.com/<key>`` or
    path style ``https://s3.<region>.amazonaws.com/<bucket>/<key>``; an old
    query string is dropped).
``empty``
    neither field holds anything.
``unrecognized``
    anything else: another bucket or host, a key outside the allowed
    prefixes, dot segments. Left untouched and listed: the command never
    produces a key the gate would not serve (it cannot widen access).
"""

import re
from urllib.parse import unquote, urlsplit

DEFAULT_ALLOWED = ("bols/", "bol_pdfs/")
DEFAULT_STRIP = ("media/",)

_S3_HOST = re.compile(r"^(?:(?P<vbucket>[a-z0-9.\-_]+)\.)?s3(?:[.-](?P<region>[a-z0-9-]+))?\.amazonaws\.com$")


class Rules:
    def __init__(self, bucket, allowed=DEFAULT_ALLOWED, strip=DEFAULT_STRIP, url_prefix="/media/"):
        self.bucket = bucket
        self.allowed = tuple(allowed)
        self.strip = tuple(strip)
        self.url_prefix = url_prefix

    def allowed_key(self, key):
        """``key`` if the gate would serve it, with a stray prefix dropped once; else None."""
        if not key:
            return None
        for p in self.strip:
            if key.startswith(p):
                key = key[len(p):]
                break
        parts = key.split("/")
        if any(s in ("", ".", "..") for s in parts) or "\\" in key:
            return None
        if not key.startswith(self.allowed):
            return None
        return key

    def key_from_url(self, url):
        """(shape, key) for a stored URL value."""
        if url.startswith(self.url_prefix):
            rest = unquote(url[len(self.url_prefix):].split("?", 1)[0])
            key = self.allowed_key(rest)
            if key is None:
                return "unrecognized", None
            if rest.startswith("bols/"):
                return "media_bols", key
            if rest.startswith("bol_pdfs/"):
                return "media_bol_pdfs", key
            return "media_other", key
        parts = urlsplit(url)
        m = _S3_HOST.match((parts.hostname or "").lower()) if parts.scheme in ("http", "https") else None
        if m is None or not self.bucket:
            return "unrecognized", None
        path = unquote(parts.path.lstrip("/"))
        if m.group("vbucket"):
            bucket, key = m.group("vbucket"), path
        else:
            bucket, _, key = path.partition("/")
        if bucket != self.bucket:
            return "unrecognized", None
        key = self.allowed_key(key)
        return ("s3_url", key) if key else ("unrecognized", None)

    def classify(self, url, key):
        """(shape, canonical key or None) for one row's (url, key) values."""
        url = (url or "").strip()
        key = (key or "").strip()
        if key:
            fixed = self.allowed_key(key)
            if fixed is None:
                return "unrecognized", None
            return ("canonical" if fixed == key else "stray_media_key"), fixed
        if not url:
            return "empty", None
        return self.key_from_url(url)

    def canonical_url(self, key):
        from django.utils.encoding import filepath_to_uri

        return self.url_prefix + filepath_to_uri(key)
