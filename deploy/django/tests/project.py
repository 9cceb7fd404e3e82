"""The small Django project both the pytest suite and the gate's end-to-end
tests run: the adapter behind session and auth middleware, the PDF-link
fixture app, the adapter's storage class and logging filter."""

import os

import django
from django.conf import settings

from tests.bolapp.fixture import BUCKET


def configure(secrets, db=":memory:", log_file=None, s3_endpoint=None):
    """`s3_endpoint`: an S3-compatible server (path-style) for the storage;
    credentials come from the standard AWS_* variables, as in production."""
    handlers = {"console": {"class": "logging.StreamHandler", "filters": ["redact"]}}
    if log_file:
        handlers["file"] = {"class": "logging.FileHandler", "filename": log_file, "filters": ["redact"]}
    settings.configure(
        DEBUG=False,
        SECRET_KEY="django-test-key-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="tests.urls",
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "prt_gate_auth",
            "tests.bolapp",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db}},
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "prt_gate_auth.middleware.PrtGateAssertionMiddleware",
        ],
        PRT_GATE_ASSERTION_SECRETS=list(secrets),
        PRT_GATE_ASSERTION_AUDIENCE="django",
        STORAGES={
            "default": {"BACKEND": "prt_gate_auth.storage.GateS3Storage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
        AWS_STORAGE_BUCKET_NAME=BUCKET,
        AWS_S3_REGION_NAME="us-east-2",
        AWS_S3_ENDPOINT_URL=s3_endpoint,
        AWS_S3_ADDRESSING_STYLE="path",
        AWS_LOCATION="",
        PRT_GATE_PDF_LINKS=[
            {"model": "bolapp.BOL", "key_field": "pdf_key", "url_field": "pdf_url"},
            {"model": "bolapp.BOL", "url_field": "stamped_pdf_url", "old_field": "stamped_pdf_url_old"},
        ],
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"redact": {"()": "prt_gate_auth.redact.RedactingFilter"}},
            "handlers": handlers,
            "root": {"handlers": list(handlers), "level": "INFO"},
        },
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, run_syncdb=True)


def configure_from_env():
    """The end-to-end processes: everything from the environment the gate's
    tests (and `prt-gate run`) give them."""
    secrets = [os.environ[n] for n in ("PRT_ASSERTION_SECRET", "PRT_ASSERTION_PREVIOUS_SECRET") if os.environ.get(n)]
    configure(
        secrets,
        db=os.environ.get("E2E_DB", ":memory:"),
        log_file=os.environ.get("E2E_LOG") or None,
        s3_endpoint=os.environ.get("E2E_S3_ENDPOINT") or None,
    )
