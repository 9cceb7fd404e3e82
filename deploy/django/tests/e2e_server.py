"""A tiny Django project using the adapter, for the gate's end-to-end test.

Usage: python3 e2e_server.py  (reads PRT_GATE_ASSERTION__SECRET; prints
"listening on 127.0.0.1:PORT" once ready; serves until killed).
"""

import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from django.core.wsgi import get_wsgi_application  # noqa: E402

from tests.project import configure  # noqa: E402

configure([os.environ["PRT_GATE_ASSERTION__SECRET"]])


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", 0, get_wsgi_application(), handler_class=Quiet)
print(f"listening on 127.0.0.1:{server.server_port}", flush=True)
server.serve_forever()
