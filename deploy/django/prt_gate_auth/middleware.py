"""Django middleware that accepts identity only from prt-gate.

prt-gate terminates the SSO login and forwards each request with
``X-Prt-Assertion``: a short-lived HS256 JWT (``iss`` = ``prt-gate``) naming
the user, role, features, tenant, and the request's method and path. This
middleware verifies it with PyJWT and then:

* logs the user in (``username = email``), creating the user on first sight;
* sets the session keys the PrimeTrade app reads: ``primetrade_role``
  (``{"role", "permissions"}``), ``application_roles``,
  ``feature_permissions``, ``tenant_id``, ``tenant_name``, ``tenant_code``;
* flushes the session when the assertion names a different user than the
  session holds (no identity carried over between users).

A request without a valid assertion (missing, wrong signature, wrong
audience or issuer, expired, made for another method or path) is anonymous:
``request.user`` is ``AnonymousUser`` and ``request.session`` is an empty,
unsaved session, so no role or tenant from an earlier request is visible.

Settings (see README.md):

``PRT_GATE_ASSERTION_SECRETS``
    list of accepted secrets, newest first (two during rotation); each at
    least 32 bytes. Read in settings.py from PRT_ASSERTION_SECRET and
    PRT_ASSERTION_PREVIOUS_SECRET (what `prt-gate run` gives its child).
``PRT_GATE_ASSERTION_AUDIENCE``
    expected ``aud`` (default ``"django"``).
``PRT_GATE_ASSERTION_LEEWAY``
    clock skew tolerance in seconds (default 5).

Place it after ``SessionMiddleware`` and ``AuthenticationMiddleware``.
"""

from urllib.parse import unquote

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured

HEADER = "HTTP_X_PRT_ASSERTION"
ISSUER = "prt-gate"
MIN_SECRET_BYTES = 32
REQUIRED = ["exp", "iat", "iss", "aud", "sub", "email", "role", "jti", "method", "path"]


class PrtGateAssertionMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        secrets = list(getattr(settings, "PRT_GATE_ASSERTION_SECRETS", []) or [])
        if not secrets:
            raise ImproperlyConfigured("PRT_GATE_ASSERTION_SECRETS is empty")
        for s in secrets:
            if len(s.encode()) < MIN_SECRET_BYTES:
                raise ImproperlyConfigured("each PRT_GATE_ASSERTION_SECRETS entry needs at least 32 bytes")
        self.secrets = secrets
        self.audience = getattr(settings, "PRT_GATE_ASSERTION_AUDIENCE", "django")
        self.leeway = int(getattr(settings, "PRT_GATE_ASSERTION_LEEWAY", 5))

    def __call__(self, request):
        claims = self.verify(request)
        if claims is None:
            self.make_anonymous(request)
        else:
            self.establish(request, claims)
        return self.get_response(request)

    def verify(self, request):
        """The assertion's claims, or None if it is absent or invalid in any way."""
        token = request.META.get(HEADER)
        if not token:
            return None
        claims = None
        for secret in self.secrets:
            try:
                claims = jwt.decode(
                    token,
                    secret,
                    algorithms=["HS256"],
                    audience=self.audience,
                    issuer=ISSUER,
                    leeway=self.leeway,
                    options={"require": REQUIRED},
                )
                break
            except jwt.InvalidTokenError:
                continue
        if claims is None:
            return None
        # Bound to this request: a captured assertion cannot be replayed
        # against another method or path.
        if claims["method"] != request.method:
            return None
        if unquote(claims["path"]) != request.path_info:
            return None
        if claims["exp"] - claims["iat"] > 60:
            return None
        return claims

    def make_anonymous(self, request):
        from importlib import import_module

        engine = import_module(settings.SESSION_ENGINE)
        request.session = engine.SessionStore()
        request.user = AnonymousUser()

    def establish(self, request, claims):
        email = claims["email"]
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.get_username() != email:
            request.session.flush()
        User = get_user_model()
        user, _ = User.objects.get_or_create(username=email, defaults={"email": email})
        if not (request.user.is_authenticated and request.user.pk == user.pk):
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        features = claims.get("features") or {}
        permissions = sorted(f"{f}:{p}" for f, perms in features.items() for p in perms)
        role = claims["role"]
        s = request.session
        s["primetrade_role"] = {"role": role, "permissions": permissions}
        s["application_roles"] = {
            "primetrade": {
                "role": role,
                "permissions": permissions,
                "features": features,
                "tenant_code": claims.get("tenant_code"),
            }
        }
        s["feature_permissions"] = features
        s["tenant_id"] = claims.get("tenant_id")
        s["tenant_name"] = claims.get("tenant_name")
        s["tenant_code"] = claims.get("tenant_code")
        request.prt_gate = claims
