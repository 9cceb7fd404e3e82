"""`python3 tests/manage.py CMD` for the test project configured from the
environment (see project.configure_from_env): how the gate's end-to-end
tests run the adapter's management command against the fixture database."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from django.core.management import execute_from_command_line  # noqa: E402

from tests.project import configure_from_env  # noqa: E402

configure_from_env()
execute_from_command_line(sys.argv)
