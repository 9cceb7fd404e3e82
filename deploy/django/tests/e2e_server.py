"""A tiny Django project using the adapter, for the gate's end-to-end tests.

Usage: python3 e2e_server.py  (configured from the environment, see
project.configure_from_env; E2E_PORT picks the port, default any; with
E2E_ENV_DUMP=path it writes its environment there as JSON first). Prints
"listening on 127.0.0.1:PORT" once ready; serves until killed.
"""

import json
import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from django.core.wsgi import get_wsgi_application  # noqa: E402

from tests.project import configure_from_env  # noqa: E402

if os.environ.get("E2E_ENV_DUMP"):
    with open(os.environ["E2E_ENV_DUMP"], "w") as f:
        json.dump(dict(os.environ), f)

configure_from_env()


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", int(os.environ.get("E2E_PORT", "0")), get_wsgi_application(), handler_class=Quiet)
print(f"listening on 127.0.0.1:{server.server_port}", flush=True)
server.serve_forever()
