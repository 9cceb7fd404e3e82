"""Storage whose links go through prt-gate.

``GateS3Storage`` is django-storages' S3 storage in every respect (Django
still writes the PDFs it generates with its own ``PutObject`` credentials,
``AWS_*`` settings as usual) except ``url(name)``: it returns
``/media/<name>``, a path on the gate, instead of a presigned or public S3
URL. The gate checks the caller's role, maps the path to the object key
(``media.key_prefix`` + name; set it to ``AWS_LOCATION + "/"`` when a location
is used) and answers with a short-lived signed redirect.

Settings: ``PRT_GATE_MEDIA_URL`` (default ``"/media/"``): the gate path the
links start with.
"""

from django.conf import settings
from django.utils.encoding import filepath_to_uri

try:  # django-storages >= 1.14
    from storages.backends.s3 import S3Storage
except ImportError:  # pragma: no cover - older django-storages
    from storages.backends.s3boto3 import S3Boto3Storage as S3Storage

from storages.utils import clean_name


def gate_url(name):
    """``/media/<name>`` for an object name as the application stores it."""
    prefix = getattr(settings, "PRT_GATE_MEDIA_URL", "/media/")
    return prefix + filepath_to_uri(clean_name(name).lstrip("/"))


class GateS3Storage(S3Storage):
    def url(self, name, parameters=None, expire=None, http_method=None):
        return gate_url(name)
