"""The small Django project both the pytest suite and the gate's end-to-end
test run: the adapter behind session and auth middleware, in-memory SQLite."""

import django
from django.conf import settings


def configure(secrets):
    settings.configure(
        DEBUG=False,
        SECRET_KEY="django-test-key-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="tests.urls",
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "prt_gate_auth.middleware.PrtGateAssertionMiddleware",
        ],
        PRT_GATE_ASSERTION_SECRETS=list(secrets),
        PRT_GATE_ASSERTION_AUDIENCE="django",
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, run_syncdb=True)
