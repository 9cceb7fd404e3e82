import functools

from django.http import HttpResponseForbidden, JsonResponse
from django.urls import path


def require_role(*roles):
    """The PrimeTrade app's decorator shape: role from the session."""

    def deco(view):
        @functools.wraps(view)
        def wrapped(request, *a, **kw):
            role = (request.session.get("primetrade_role") or {}).get("role")
            if role not in roles:
                return HttpResponseForbidden("forbidden")
            return view(request, *a, **kw)

        return wrapped

    return deco


def whoami(request):
    s = request.session
    return JsonResponse(
        {
            "user": request.user.get_username() if request.user.is_authenticated else None,
            "role": (s.get("primetrade_role") or {}).get("role"),
            "permissions": (s.get("primetrade_role") or {}).get("permissions"),
            "tenant_id": s.get("tenant_id"),
            "tenant_name": s.get("tenant_name"),
            "tenant_code": s.get("tenant_code"),
            "features": s.get("feature_permissions"),
        }
    )


@require_role("Admin", "Office")
def audit(request):
    return JsonResponse({"ok": True})


urlpatterns = [
    path("api/auth/me/", whoami),
    path("api/audit/", audit),
    path("api/a b/", whoami),
]
