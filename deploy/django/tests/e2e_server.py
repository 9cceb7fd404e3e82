"""A tiny Django project using the adapter, for the gate's end-to-end test.

Usage: python3 e2e_server.py  (reads PRT_GATE_ASSERTION__SECRET; prints
"listening on 127.0.0.1:PORT" once ready; serves until killed).
"""

import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(
    DEBUG=False,
    SECRET_KEY="e2e-not-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF="tests.urls",
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "prt_gate_auth.middleware.PrtGateAssertionMiddleware",
    ],
    PRT_GATE_ASSERTION_SECRETS=[os.environ["PRT_GATE_ASSERTION__SECRET"]],
    PRT_GATE_ASSERTION_AUDIENCE="django",
    USE_TZ=True,
)
django.setup()

from django.core.management import call_command  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

call_command("migrate", verbosity=0, run_syncdb=True)


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", 0, get_wsgi_application(), handler_class=Quiet)
print(f"listening on 127.0.0.1:{server.server_port}", flush=True)
server.serve_forever()
