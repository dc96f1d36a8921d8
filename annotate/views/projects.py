"""Browser pages: my projects, a project's page, import and export. Server-rendered; the
labeling page is the one small client (static/annotate/js/)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from annotate import exporting, importing
from annotate.items import item_image_get
from annotate.models import ExportJob, ImportJob, Project
from annotate.projects import membership_list, project_list_with_progress, project_progress
from annotate.review import review_notices, review_notices_seen
from annotate.views.access import page_membership
from training.proposals import random_slice_report
from training.runs import training_run_list
from training.versions import model_version_active, model_version_list_with_acceptance
from training.workers import training_unavailable_reason


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "annotate/home.html", {"rows": project_list_with_progress(user=request.user)})


@login_required
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    membership = page_membership(request, project_id)
    project = membership.project
    reviews = membership.can_review
    # Not looked for among the newest versions only: after a rollback it is an older one.
    active_version = model_version_active(project=project) if reviews else None
    context = {
        "project": project,
        "membership": membership,
        "versions": model_version_list_with_acceptance(project=project) if reviews else [],
        "active_version": active_version,
        # The random slice's estimates, their learning curve and the stopping advice.
        "slice_report": random_slice_report(project=project, active=active_version) if reviews else None,
        "run": training_run_list(project=project).first() if membership.can_manage else None,
        "progress": project_progress(project=project, user=request.user),
        "members": membership_list(project=project) if membership.can_review else None,
        "labels": project.labels.all(),
        # Shown on the Model card, which reviewers and managers see.
        "training_unavailable": training_unavailable_reason() if membership.can_review else None,
    }
    return render(request, "annotate/project_detail.html", context)


def render_markdown(text: str) -> str:
    """Markdown to HTML with anything unsafe removed (scripts, event handlers, javascript: links)."""
    import markdown
    import nh3

    return nh3.clean(markdown.markdown(text, extensions=["sane_lists"]))


@login_required
def label(request: HttpRequest, project_id: int) -> HttpResponse:
    """The labeling page: a small client (static/annotate/js/label.js) over the queue API."""
    membership = page_membership(request, project_id)
    project = membership.project
    labels = list(project.labels.all())
    config = {
        "project_id": project.pk,
        "task_type": project.task_type,
        "multi_label": project.multi_label,
        "spans_snap_to_tokens": project.spans_snap_to_tokens,
        "spans_may_overlap": project.spans_may_overlap,
        "labels": [{"name": lb.name, "hotkey": lb.hotkey, "colour": lb.colour} for lb in labels],
        "csrf_token": get_token(request),
    }
    # Sanitised by nh3 in render_markdown, so it may be marked safe.
    instructions = mark_safe(render_markdown(project.instructions)) if project.instructions else ""
    # Rejects of this annotator's answers, each shown once, with the reviewer's reason.
    notices = review_notices(project=project, annotator=request.user)
    review_notices_seen(reviews=notices)
    context = {
        "project": project,
        "labels": labels,
        "config": config,
        "instructions_html": instructions,
        "notices": notices,
        "paused_reason": membership.paused_reason if membership.paused else "",
    }
    return render(request, "annotate/label.html", context)


class _MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class _MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", _MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(d, initial) for d in data]
        return [single(data, initial)] if data else []


class ImportForm(forms.Form):
    FORMATS = [
        ("csv", "CSV"),
        ("json", "JSON array"),
        ("jsonl", "JSON Lines"),
        ("text", "Plain text, one item per line"),
        ("images", "Images (several files)"),
        ("zip", "Images in a zip"),
        ("coco", "COCO JSON (boxes onto the project's images)"),
        ("yolo", "YOLO zip: classes.txt and a txt per image (boxes)"),
        ("conll", "CoNLL, BIO tags (spans)"),
        ("spacy", "spaCy / Prodigy JSONL (spans)"),
    ]
    format = forms.ChoiceField(choices=FORMATS)
    files = _MultipleFileField(label="File(s)")
    text_column = forms.CharField(initial="text", required=False, help_text="CSV column or JSON field")
    image_column = forms.CharField(
        initial="image_url",
        required=False,
        label="Image URL column",
        help_text="Image projects: the CSV column or JSON field holding each image's http(s) URL",
    )
    id_column = forms.CharField(required=False, help_text="Optional: external id column / field")
    label_column = forms.CharField(required=False, help_text="Optional: existing labels to import")
    prediction_column = forms.CharField(required=False, help_text="Optional: proposals to show")
    gold_column = forms.CharField(required=False, help_text="Optional: true values of gold items")
    label_source = forms.CharField(initial="import", help_text="Name the imported labels come from")
    import_as = forms.ChoiceField(
        choices=[("labels", "Labels"), ("predictions", "Predictions (pre-filled for annotators)")],
        initial="labels",
        required=False,
        label="Import boxes or spans as",
        help_text="COCO, YOLO, CoNLL and spaCy files",
    )

    def options(self) -> dict:
        """The import options the user set: fields left at the form's own defaults are dropped, so
        that the importer's defaults apply (and formats without columns get none)."""
        data = self.cleaned_data
        return {
            name: data[name]
            for name in importing.OPTION_NAMES
            if data.get(name) and data[name] != self.fields[name].initial
        }


def _job_json(job: ImportJob) -> dict:
    return {
        "id": job.pk,
        "status": job.status,
        "progress": job.progress,
        "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "items_created": job.items_created,
        "error": job.error,
        "url": reverse("annotate:import-job", args=[job.project_id, job.pk]),
    }


@login_required
@require_http_methods(["GET", "POST"])
def project_import(request: HttpRequest, project_id: int) -> HttpResponse:
    """The manager's import page. The page's script posts the form itself (upload progress) and
    then polls the job; without script, the form posts and the page shows the job."""
    membership = page_membership(request, project_id, needs="manage")
    project = membership.project
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = _job_json(_import(request, project, form))
        except ValidationError as exc:  # the format or an option (importing.import_options_validate)
            if _wants_json(request):
                return JsonResponse({"status": "failed", "error": " ".join(exc.messages)}, status=400)
            form.add_error(None, exc.messages)
            return render(request, "annotate/project_import.html", {"project": project, "form": form})
        if _wants_json(request):
            return JsonResponse(job, status=400 if job["status"] == ImportJob.Status.FAILED else 201)
        if job["status"] == ImportJob.Status.FAILED:
            form.add_error(None, f"Nothing was imported: {job['error']}")
        elif job["status"] == ImportJob.Status.SUCCEEDED:
            updated = job["rows_done"] - job["items_created"]
            also = f", and gave {updated} existing items their boxes or spans" if updated > 0 else ""
            messages.success(request, f"Imported {job['items_created']} items into {project.name}{also}.")
            return redirect("annotate:project", project_id=project.pk)
        else:
            return redirect(job["url"])
    elif request.method == "POST" and _wants_json(request):
        return JsonResponse({"status": "failed", "error": _form_errors(form)}, status=400)
    return render(request, "annotate/project_import.html", {"project": project, "form": form})


def _import(request: HttpRequest, project: Project, form: ImportForm) -> ImportJob:
    """Start the import the form asks for: finished at once when small, else queued for a worker."""
    return importing.item_import_start(
        project=project,
        files=[(f.name, f) for f in form.cleaned_data["files"]],
        format=form.cleaned_data["format"],
        options=form.options(),
        created_by=request.user,
    )


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _form_errors(form: forms.Form) -> str:
    return "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())


@login_required
def import_job(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    """An import job's state: JSON for the page's script, else the page (it polls while running)."""
    membership = page_membership(request, project_id, needs="manage")
    job = importing.import_job_get(project=membership.project, job_id=job_id)
    if job is None:
        raise Http404("No such import.")
    if _wants_json(request):
        return JsonResponse(_job_json(job))
    template = "annotate/partials/_import_job.html" if request.htmx else "annotate/import_job.html"
    return render(request, template, {"project": membership.project, "job": job})


class ExportForm(forms.Form):
    FORMATS = {
        "json": "JSON",
        "jsonl": "JSON Lines",
        "csv": "CSV",
        "coco": "COCO JSON (final boxes, in pixels)",
        "yolo": "YOLO zip (final boxes, classes.txt)",
        "conll": "CoNLL, BIO tags (final spans)",
        "spacy": "spaCy / Prodigy JSONL (final spans)",
    }
    format = forms.ChoiceField(choices=list(FORMATS.items()))
    labeled_only = forms.BooleanField(required=False, label="Labeled items only")
    reviewed_only = forms.BooleanField(required=False, label="Reviewed items only")

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the formats this project's task type has (exporting.export_formats_for).
        self.fields["format"].choices = [(f, self.FORMATS[f]) for f in exporting.export_formats_for(project)]


@login_required
def project_export(request: HttpRequest, project_id: int) -> HttpResponse:
    """Export form; with a format given, stream the export, or start a background export for big
    projects (or when asked with ?background). Image URLs in it need a logged-in member."""
    membership = page_membership(request, project_id, needs="manage")
    project = membership.project
    form = ExportForm(request.GET if "format" in request.GET else None, project=project)
    if form.is_bound and form.is_valid():
        answer = exporting.export_request(
            project=project,
            format=form.cleaned_data["format"],
            labeled_only=form.cleaned_data["labeled_only"],
            reviewed_only=form.cleaned_data["reviewed_only"],
            requested_by=request.user,
            background="background" in request.GET,
            base_url=request.build_absolute_uri("/"),
        )
        if answer.job is not None:
            return redirect("annotate:export-job", project_id=project.pk, job_id=answer.job.pk)
        response = StreamingHttpResponse(answer.chunks, content_type=answer.content_type)
        response["Content-Disposition"] = f'attachment; filename="{answer.filename}"'
        return response
    jobs = exporting.export_job_list(project=project)[:10]
    return render(request, "annotate/project_export.html", {"project": project, "form": form, "jobs": jobs})


@login_required
def item_image(request: HttpRequest, project_id: int, item_id: int) -> FileResponse:
    """An item's image, to members of its project only (media is never served publicly)."""
    membership = page_membership(request, project_id)
    item = item_image_get(project=membership.project, item_id=item_id)
    if item is None or not item.image:
        raise Http404("No such image.")
    response = FileResponse(item.image.open("rb"))
    # Private: browsers may keep it (the page preloads the next image), shared caches may not.
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
def export_job(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    membership = page_membership(request, project_id, needs="manage")
    job = exporting.export_job_get(project=membership.project, job_id=job_id)
    if job is None:
        raise Http404("No such export.")
    template = "annotate/partials/_export_job.html" if request.htmx else "annotate/export_job.html"
    return render(request, template, {"project": membership.project, "job": job})


@login_required
def export_job_download(request: HttpRequest, project_id: int, job_id: int) -> FileResponse:
    membership = page_membership(request, project_id, needs="manage")
    job = exporting.export_job_get(project=membership.project, job_id=job_id)
    if job is None or job.status != ExportJob.Status.SUCCEEDED or not job.file:
        raise Http404("No such finished export.")
    filename = exporting.export_filename(membership.project, job.format)
    return FileResponse(job.file.open("rb"), as_attachment=True, filename=filename)
