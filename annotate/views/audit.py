"""The leads' pages for what cannot be undone or must be answered for: the project's audit log,
and deleting the project after a confirmation that names what goes (managers only)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotate.audit import audit_describe, audit_list
from annotate.models import Project
from annotate.projects import project_delete, project_deletion_counts
from annotate.views.access import page_membership

AUDIT_PAGE_SIZE = 50


@login_required
@require_GET
def audit_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """The project's audit log, newest first, 50 a page (a page number out of range shows the
    nearest page, one that is not a number the first)."""
    membership = page_membership(request, project_id, needs="manage")
    page = Paginator(audit_list(project=membership.project), AUDIT_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "project": membership.project,
        "page": page,
        "rows": [(event, audit_describe(event)) for event in page],
    }
    return render(request, "annotate/audit.html", context)


class ProjectDeleteForm(forms.Form):
    """The project's name, typed to confirm (as GitHub asks)."""

    name = forms.CharField(max_length=200, label="Type the project's name to confirm")

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["name"].widget.attrs.update(autocomplete="off", spellcheck="false")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if name != self.project.name.strip():
            raise ValidationError("That is not this project's name: nothing was deleted.")
        return name


@login_required
@require_http_methods(["GET", "POST"])
def project_delete_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """What deleting the project takes, and the form that confirms it; a POST with the project's
    name deletes it (annotate.projects.project_delete) and goes home, any other name shows the
    page again with status 400."""
    membership = page_membership(request, project_id, needs="manage")
    project = membership.project
    form = ProjectDeleteForm(request.POST if request.method == "POST" else None, project=project)
    if form.is_bound and form.is_valid():
        name = project.name
        project_delete(project=project, actor=request.user)
        messages.success(request, f"Project “{name}” was deleted, with everything in it.")
        return redirect("annotate:home")
    context = {"project": project, "form": form, "counts": project_deletion_counts(project=project)}
    return render(request, "annotate/project_delete.html", context, status=400 if form.is_bound else 200)
