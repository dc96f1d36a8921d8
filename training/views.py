"""Browser actions for training on the lead's project page: retrain, follow the run, cancel; a
version's model card and its download."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate.models import Project
from annotate.views.access import page_membership
from training.download import model_download_response
from training.model_card import model_card
from training.models import ModelVersion, TrainingRun
from training.proposals import random_slice_report
from training.runs import training_run_cancel, training_run_list, training_run_request
from training.versions import NoModelForTask, model_version_active, model_version_list_with_acceptance


def _manager_or_404(request: HttpRequest, project_id: int):
    """The project, for its managers; 404 to non-members, 403 to its other members."""
    return page_membership(request, project_id, needs="manage").project


def _run_partial(
    request: HttpRequest, project: Project, run: TrainingRun | None, *, joined: bool = False
) -> HttpResponse:
    """The run as a partial; once it has ended, with the Model card's versions (_model.html) swapped
    in out of band, so the card shows the version now active without a reload."""
    context = {"project": project, "run": run, "joined": joined}
    if run is not None and not run.is_open:
        versions = model_version_list_with_acceptance(project=project)
        # The active version may be older than the newest few listed (a rollback).
        active = next((v for v in versions if v.is_active), None) or model_version_active(project=project)
        context.update(
            refresh_model=True,
            versions=versions,
            active_version=active,
            slice_report=random_slice_report(project=project, active=active),
        )
    return render(request, "training/partials/_run.html", context)


@login_required
@require_POST
def run_request(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _manager_or_404(request, project_id)
    try:
        run, created = training_run_request(
            project=project, trigger="project page", requested_by=request.user
        )
    except NoModelForTask as exc:
        if request.htmx:
            # 200, so htmx swaps the partial in: the refusal is an answer, not a failure.
            context = {"project": project, "run": None, "refused": str(exc)}
            return render(request, "training/partials/_run.html", context)
        messages.error(request, str(exc))
        return redirect("annotate:project", project_id=project.pk)
    if request.htmx:
        return _run_partial(request, project, run, joined=not created)
    if created:
        messages.success(request, "Training started.")
    else:
        messages.info(request, f"A training run is already {run.status}: your request joins it.")
    return redirect("annotate:project", project_id=project.pk)


@login_required
def run_status(request: HttpRequest, project_id: int) -> HttpResponse:
    """The latest run as a partial; it polls itself while the run is open."""
    project = _manager_or_404(request, project_id)
    return _run_partial(request, project, training_run_list(project=project).first())


@login_required
@require_POST
def run_cancel(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = _manager_or_404(request, project_id)
    run = training_run_list(project=project).filter(pk=run_id).first()
    if run is None:
        raise Http404("No such run.")
    run = training_run_cancel(run=run)
    if request.htmx:
        return _run_partial(request, project, run)
    return redirect("annotate:project", project_id=project.pk)


def _version_or_404(project: Project, number: int) -> ModelVersion:
    return get_object_or_404(
        ModelVersion.objects.select_related("dataset", "created_by"), project=project, number=number
    )


@login_required
def model_card_page(request: HttpRequest, project_id: int, number: int) -> HttpResponse:
    """A version's model card, for the project's reviewers and managers."""
    membership = page_membership(request, project_id, needs="review")
    project = membership.project
    version = _version_or_404(project, number)
    context = {
        "project": project,
        "version": version,
        "card": model_card(version=version),
        "can_manage": membership.can_manage,
        "changed": list((project.training_params or {}).keys()),
    }
    return render(request, "training/model_card.html", context)


@login_required
def model_download(request: HttpRequest, project_id: int, number: int) -> HttpResponse:
    """The version as a zip with its loader (training/download.py), for the project's managers."""
    project = _manager_or_404(request, project_id)
    return model_download_response(version=_version_or_404(project, number))
