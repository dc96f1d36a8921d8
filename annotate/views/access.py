"""Who may open a project's pages: members only (404 for everyone else, as for a project that
does not exist, so ids reveal nothing); a member whose role is too low gets 403."""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

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
