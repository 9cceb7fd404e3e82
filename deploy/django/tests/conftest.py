import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SECRET = "test-secret-" + "x" * 32
OLD_SECRET = "old-secret-" + "y" * 32


def pytest_configure():
    from tests.project import configure

    configure([SECRET, OLD_SECRET])
