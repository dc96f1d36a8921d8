"""Browser actions for training on the lead's project page: retrain, follow the run, cancel."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotate.projects import membership_get
from training.models import TrainingRun
from training.services import training_run_cancel, training_run_list, training_run_request


def _manager_or_404(request: HttpRequest, project_id: int):
    membership = membership_get(user=request.user, project_id=project_id)
    if membership is None or not membership.can_manage:
        raise Http404("No such project.")
    return membership.project


@login_required
@require_POST
def run_request(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _manager_or_404(request, project_id)
    run, created = training_run_request(project=project, trigger="project page", requested_by=request.user)
    if request.htmx:
        return render(
            request, "training/partials/_run.html", {"project": project, "run": run, "joined": not created}
        )
    if created:
        messages.success(request, "Training started.")
    else:
        messages.info(request, f"A training run is already {run.status}: your request joins it.")
    return redirect("annotate:project", project_id=project.pk)


@login_required
def run_status(request: HttpRequest, project_id: int) -> HttpResponse:
    """The latest run as a partial; it polls itself while the run is open."""
    project = _manager_or_404(request, project_id)
    run = training_run_list(project=project).first()
    return render(request, "training/partials/_run.html", {"project": project, "run": run})


@login_required
@require_POST
def run_cancel(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = _manager_or_404(request, project_id)
    run = TrainingRun.objects.filter(project=project, pk=run_id).first()
    if run is None:
        raise Http404("No such run.")
    run = training_run_cancel(run=run)
    if request.htmx:
        return render(request, "training/partials/_run.html", {"project": project, "run": run})
    return redirect("annotate:project", project_id=project.pk)
