import os
import sys

import django
from django.conf import settings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SECRET = "test-secret-" + "x" * 32
OLD_SECRET = "old-secret-" + "y" * 32


def pytest_configure():
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
        PRT_GATE_ASSERTION_SECRETS=[SECRET, OLD_SECRET],
        PRT_GATE_ASSERTION_AUDIENCE="django",
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, run_syncdb=True)
