import time

import jwt
import pytest
from django.test import Client

from tests.conftest import OLD_SECRET, SECRET



def assertion(secret=SECRET, **over):
    now = int(time.time())
    claims = {
        "iss": "prt-gate",
        "aud": "django",
        "sub": "u-client",
        "email": "client@example.com",
        "role": "Client",
        "features": {"bol": ["view"], "releases": ["view"]},
        "tenant_id": "primetrade",
        "tenant_name": "PrimeTrade Logistics",
        "tenant_code": "PRT",
        "iat": now,
        "exp": now + 30,
        "jti": "rid-1",
        "method": "GET",
        "path": "/api/auth/me/",
    }
    claims.update(over)
    return jwt.encode(claims, secret, algorithm="HS256")


def me(client, token=None, path="/api/auth/me/"):
    headers = {"HTTP_X_PRT_ASSERTION": token} if token else {}
    return client.get(path, **headers).json()


def test_valid_assertion_logs_in_and_sets_session_keys():
    c = Client()
    body = me(c, assertion())
    assert body == {
        "user": "client@example.com",
        "role": "Client",
        "permissions": ["bol:view", "releases:view"],
        "tenant_id": "primetrade",
        "tenant_name": "PrimeTrade Logistics",
        "tenant_code": "PRT",
        "features": {"bol": ["view"], "releases": ["view"]},
    }


ANON = {"user": None, "role": None, "permissions": None, "tenant_id": None, "tenant_name": None, "tenant_code": None, "features": None}


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: None, id="missing"),
        pytest.param(lambda: assertion(secret="wrong-secret-" + "z" * 32), id="wrong-signature"),
        pytest.param(lambda: assertion(aud="other"), id="wrong-audience"),
        pytest.param(lambda: assertion(iss="someone-else"), id="wrong-issuer"),
        pytest.param(lambda: assertion(iat=int(time.time()) - 120, exp=int(time.time()) - 60), id="expired"),
        pytest.param(lambda: assertion(path="/api/other/"), id="other-path"),
        pytest.param(lambda: assertion(method="POST"), id="other-method"),
        pytest.param(lambda: assertion(exp=int(time.time()) + 3600), id="too-long-lived"),
        pytest.param(lambda: jwt.encode({"email": "x@y"}, SECRET, algorithm="HS256"), id="missing-claims"),
        pytest.param(lambda: "not-a-jwt", id="garbage"),
    ],
)
def test_invalid_assertion_is_anonymous(token):
    c = Client()
    assert me(c, token()) == ANON


def test_no_assertion_hides_an_earlier_identity():
    c = Client()
    assert me(c, assertion())["user"] == "client@example.com"
    # Same browser session, but this request did not come through the gate.
    assert me(c) == ANON
    # And the gate's next request still works.
    assert me(c, assertion())["role"] == "Client"


def test_rotation_accepts_old_and_new_secret():
    assert me(Client(), assertion(secret=OLD_SECRET))["user"] == "client@example.com"
    assert me(Client(), assertion(secret=SECRET))["user"] == "client@example.com"


def test_user_switch_flushes_the_session():
    c = Client()
    assert me(c, assertion())["user"] == "client@example.com"
    first_key = c.cookies["sessionid"].value
    body = me(c, assertion(email="office@example.com", sub="u-office", role="Office", features={"bol": ["view", "edit"]}))
    assert body["user"] == "office@example.com"
    assert body["role"] == "Office"
    assert body["features"] == {"bol": ["view", "edit"]}
    assert c.cookies["sessionid"].value != first_key


def test_require_role_decorator_sees_the_asserted_role():
    c = Client()
    assert c.get("/api/audit/", HTTP_X_PRT_ASSERTION=assertion(path="/api/audit/")).status_code == 403
    ok = c.get("/api/audit/", HTTP_X_PRT_ASSERTION=assertion(path="/api/audit/", role="Office", email="office@example.com"))
    assert ok.status_code == 200


def test_percent_encoded_path_matches_decoded_path_info():
    body = me(Client(), assertion(path="/api/a%20b/"), path="/api/a%20b/")
    assert body["user"] == "client@example.com"
