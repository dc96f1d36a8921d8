"""The reviewer's page: a small client (static/annotate/js/review.js) over the review API.

Boxes and spans projects show each answer drawn on its own copy of the image or text, what
differs marked, and take a correction in the labeling page's own editor (editors/boxes.js,
editors/spans.js), started from any answer; JSON stays as a fallback."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.utils.safestring import mark_safe

from annotate.models import Project
from annotate.projects import label_list
from annotate.review import review_queue_count
from annotate.views.access import page_membership
from annotate.views.projects import render_markdown


@login_required
def review(request: HttpRequest, project_id: int) -> HttpResponse:
    """Reviewers and managers (annotators 403, everyone else 404). The page leases items itself."""
    membership = page_membership(request, project_id, needs="review")
    project = membership.project
    labels = list(label_list(project=project))
    objects = project.task_type in (Project.TaskType.IMAGE_BOXES, Project.TaskType.TEXT_SPANS)
    config = {
        "project_id": project.pk,
        "task_type": project.task_type,
        "multi_label": project.multi_label,
        "labels": [{"name": lb.name, "hotkey": lb.hotkey, "colour": lb.colour} for lb in labels],
        # The span editor reads these as the labeling page gives them.
        "spans_snap_to_tokens": project.spans_snap_to_tokens,
        "spans_may_overlap": project.spans_may_overlap,
        "csrf_token": get_token(request),
    }
    # Sanitised by nh3 in render_markdown, so it may be marked safe.
    instructions = mark_safe(render_markdown(project.instructions)) if project.instructions else ""
    context = {
        "project": project,
        "labels": labels,
        "config": config,
        "instructions_html": instructions,
        "waiting": review_queue_count(project=project),
        "objects": objects,  # boxes or spans: each answer drawn, a correction in the editor
    }
    return render(request, "annotate/review.html", context)
