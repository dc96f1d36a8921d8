"""The item browser's pages (managers only): the filtered table of a project's items with its
selection and actions, and one item opened with its annotations, reviews, notes (a lead resolves
a flag there) and the model's proposal.

The filter form is a GET form, so a filtered view is a link; htmx swaps the table (and opens an
item beside it) when it is there, and every page works without it. Actions are one POST form
over the ticked rows or over "all N matching" (the filters, as the page's query string).
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from annotate import browser, exporting, notes
from annotate.models import FinalSource, Membership, Project
from annotate.views.access import page_membership
from training.models import Prediction
from training.proposals import proposal_for
from training.versions import model_version_active


def browser_proposals(project: Project) -> browser.Proposals | None:
    """The active model's proposals as annotate.browser reads them (it never imports training):
    Item's reverse relation to training's Prediction rows, and the active version. None before
    the first model."""
    version = model_version_active(project=project)
    if version is None:
        return None
    return browser.Proposals(relation=Prediction.item.field.related_query_name(), model_version_id=version.pk)


def item_proposal(item) -> dict | None:
    """What the labeling page would propose for the item: the active model's, else an imported one."""
    return proposal_for(item=item)


def _messages_of(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items()]
    return list(exc.messages)


def _display_page(raw: str | None) -> int:
    """The page number the pager shows (carried in its links for display only)."""
    return int(raw) if raw and raw.isdigit() and 0 < int(raw) < 10**6 else 1


def _context(request: HttpRequest, membership: Membership, params: QueryDict) -> tuple[dict, int]:
    """The browser's context for these query parameters, and the status to answer with."""
    project = membership.project
    proposals = browser_proposals(project)
    context = {
        "project": project,
        "membership": membership,
        "labels": list(project.labels.all()),
        "members": list(browser.browser_members(project=project)),
        "sources": FinalSource.choices,
        "sorts": [
            ("created_at", "Oldest first"),
            ("-created_at", "Newest first"),
            ("confidence", "Least confident first"),
            ("-confidence", "Most confident first"),
        ],
        "formats": exporting.FORMATS,
        "open_flags": notes.open_flag_count(project=project),
        "has_model": proposals is not None,
        "values": {name: params.get(name, "") for name in (*browser.FILTER_NAMES, "sort")},
        "errors": [],
        "page": None,
        "query": "",
        "next_url": None,
        "page_number": _display_page(params.get("page")),
        "cursor": params.get("cursor", ""),
    }
    try:
        filters = browser.item_filters_parse(project=project, params=params, proposals=proposals)
        page_size = browser.page_size_parse(params.get("page_size"))
        page = browser.item_page(
            project=project, filters=filters, cursor=context["cursor"], page_size=page_size
        )
    except ValidationError as exc:
        context["errors"] = _messages_of(exc)
        return context, 400
    query = urlencode(filters.as_params())
    context.update(page=page, query=query)
    if page.next_cursor:
        extra = {"cursor": page.next_cursor, "page": context["page_number"] + 1}
        if params.get("page_size"):
            extra["page_size"] = page_size
        context["next_url"] = f"?{query}&{urlencode(extra)}" if query else f"?{urlencode(extra)}"
    return context, 200


@login_required
@require_GET
def browser_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """The items table: filters, search, sort, keyset pages; the table alone for htmx."""
    membership = page_membership(request, project_id, needs="manage")
    context, status = _context(request, membership, request.GET)
    partial = request.htmx and request.htmx.target == "browser-results"
    template = "annotate/partials/_browser_table.html" if partial else "annotate/browser.html"
    return render(request, template, context, status=status)


@login_required
@require_GET
def browser_count(request: HttpRequest, project_id: int) -> HttpResponse:
    """How many items match the filters: a fragment the table loads after it is shown (counting
    scans every match, so the rows do not wait for it)."""
    membership = page_membership(request, project_id, needs="manage")
    project = membership.project
    try:
        filters = browser.item_filters_parse(
            project=project, params=request.GET, proposals=browser_proposals(project)
        )
    except ValidationError as exc:
        return HttpResponse(" ".join(_messages_of(exc)), status=400, content_type="text/plain")
    count = browser.item_count(project=project, filters=filters)
    return render(request, "annotate/partials/_browser_count.html", {"count": count})


@login_required
@require_GET
def browser_item(request: HttpRequest, project_id: int, item_id: int) -> HttpResponse:
    """One item: its text or image, final label and source, annotations, reviews and proposal."""
    membership = page_membership(request, project_id, needs="manage")
    detail = browser.item_detail_get(project=membership.project, item_id=item_id)
    if detail is None:
        raise Http404("No such item.")
    context = {
        "project": membership.project,
        "detail": detail,
        "item": detail.item,
        "proposal": item_proposal(detail.item),
    }
    for annotation in detail.annotations:
        annotation.seconds = annotation.active_ms / 1000
    template = "annotate/partials/_browser_item.html" if request.htmx else "annotate/browser_item.html"
    return render(request, template, context)


@login_required
@require_POST
def browser_action(request: HttpRequest, project_id: int) -> HttpResponse:
    """Apply an action to the ticked items or to all matching the filters; back to the table
    with what it did, or 400 with the table and why nothing was done."""
    membership = page_membership(request, project_id, needs="manage")
    project = membership.project
    filters = QueryDict(request.POST.get("filters", ""))
    action = request.POST.get("action", "")
    try:
        if action not in browser.ACTIONS:
            raise ValidationError({"action": f"must be one of {', '.join(sorted(browser.ACTIONS))}"})
        if request.POST.get("scope") == "all":
            data = {"filters": {name: filters.get(name) for name in filters if name in browser.FILTER_NAMES}}
        elif request.POST.getlist("ids"):
            data = {"ids": request.POST.getlist("ids")}
        else:
            raise ValidationError({"selection": "tick some items, or choose all matching"})
        selection = browser.selection_parse(project=project, data=data, proposals=browser_proposals(project))
        if action == "export":
            result = browser.selection_export(
                project=project,
                selection=selection,
                format=request.POST.get("format", "json"),
                requested_by=request.user,
                base_url=request.build_absolute_uri("/"),
            )
        else:
            result = browser.ACTIONS[action](project=project, selection=selection)
    except ValidationError as exc:
        context, _ = _context(request, membership, filters)
        context["errors"] = [*_messages_of(exc), *context["errors"]]
        return render(request, "annotate/browser.html", context, status=400)
    messages.success(request, result.message)
    if result.job is not None:
        return redirect("annotate:export-job", project_id=project.pk, job_id=result.job.pk)
    url = reverse("annotate:browser", args=[project.pk])
    query = filters.urlencode()
    return redirect(f"{url}?{query}" if query else url)


@login_required
@require_POST
def browser_note_resolve(request: HttpRequest, project_id: int, item_id: int) -> HttpResponse:
    """Resolve one open flag of the item (the form's `note`), then back to the item."""
    membership = page_membership(request, project_id, needs="manage")
    raw = request.POST.get("note", "")
    try:
        if not raw.isdigit():
            raise ValidationError({"note": "must name the flag to resolve"})
        notes.item_note_resolve(project=membership.project, item_id=item_id, note_id=int(raw))
    except notes.NoteTargetMissing as exc:
        raise Http404(str(exc)) from None
    except ValidationError as exc:
        for message in _messages_of(exc):
            messages.error(request, message)
    else:
        messages.success(request, "Flag resolved.")
    return redirect("annotate:browser-item", project_id=project_id, item_id=item_id)
