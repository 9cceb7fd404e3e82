import functools
import logging

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


def history(request):
    """The shape of the application's shipment history: PDF links per BOL."""
    from tests.bolapp.links import pdf_link, stamped_link
    from tests.bolapp.models import BOL

    if not request.user.is_authenticated:
        return JsonResponse({"error": "login required"}, status=401)
    # The kind of line the application writes: request data with credentials in it.
    logging.getLogger("bolapp").info(
        "history for %s: %r",
        request.user.get_username(),
        {"HTTP_X_PRT_ASSERTION": request.META.get("HTTP_X_PRT_ASSERTION"), "sessionid": request.session.session_key},
    )
    rows = [
        {
            "bolNumber": b.bol_number,
            "pdfUrl": pdf_link(b),
            "stampedPdfUrl": stamped_link(b),
            "pdfKey": b.pdf_key,
            "storedPdfUrl": b.pdf_url,
        }
        for b in BOL.objects.order_by("bol_number")
    ]
    return JsonResponse({"results": rows})


urlpatterns = [
    path("api/auth/me/", whoami),
    path("api/audit/", audit),
    path("api/a b/", whoami),
    path("api/history/", history),
]
