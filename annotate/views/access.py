"""Who may open a project's pages: members only (404 for everyone else, as for a project that
does not exist, so ids reveal nothing); a member whose role is too low gets 403."""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from annotate.models import Membership
from annotate.projects import membership_get


def page_membership(request: HttpRequest, project_id: int, *, needs: str = "") -> Membership:
    """The user's membership of the project. `needs`: "" (any member), "review" or "manage"."""
    membership = membership_get(user=request.user, project_id=project_id)
    if membership is None:
        raise Http404("No such project.")
    if needs == "review" and not membership.can_review:
        raise PermissionDenied("Only the project's reviewers and managers may open this page.")
    if needs == "manage" and not membership.can_manage:
        raise PermissionDenied("Only the project's managers may open this page.")
    return membership


LOCKED_OUT = "too many failed logins for this username from this address: try again in {minutes} minutes"


def locked_out_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' lockout answer (AXES_LOCKOUT_CALLABLE): 429 with Retry-After; JSON under /api/
    (the token endpoint), the page otherwise (the login page, the admin's)."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    message = LOCKED_OUT.format(minutes=seconds // 60)
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=429)
    else:
        context = {"failure_limit": settings.AXES_FAILURE_LIMIT, "minutes": seconds // 60}
        response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a JSON 403 under /api/ (a client reads JSON there), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"CSRF check failed: {reason}"}, status=403)
    from django.views.csrf import csrf_failure as page

    return page(request, reason=reason)
