"""The project settings page, for a project's managers: labeling (overlap, lease, instructions),
training, label quality (consensus method, gold share, the gold pause threshold) and, on image
projects, whether imports may name images by URL, plus the
project's gold items. Settings are saved through annotate.projects.project_update, gold items
through annotate.gold; a refusal is shown under the field it names, with status 400, and
nothing changes."""

import copy

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotate.gold import item_gold_clear, item_gold_set
from annotate.items import item_list
from annotate.models import Membership, PickKind, Project
from annotate.models.projects import (
    TRAINING_PARAMS_DESCRIBE,
    text_model_unavailable,
    training_params_refused,
)
from annotate.projects import label_list, project_update
from annotate.quality.recompute import DAWID_SKENE, SINGLE_LABEL_ONLY, project_consensus_request
from annotate.values import value_text
from annotate.views.access import page_membership

GROUPS = (
    ("Labeling", ("name", "instructions", "overlap", "lease_seconds")),
    (
        "Training",
        (
            "training_min_labels",
            "retrain_every",
            "sampling_strategy",
            "random_share",
            "text_model",
            "training_params",
        ),
    ),
    ("Label quality", ("consensus_method", "consensus_every", "gold_share", "gold_pause_below")),
    ("Text spans", ("spans_snap_to_tokens", "spans_may_overlap")),
    ("Images", ("fetch_image_urls",)),
)
# Settings that apply to some task types only; the page shows them on those types' projects.
TYPE_GROUPS = {
    "Text spans": (Project.TaskType.TEXT_SPANS,),
    "Images": (Project.TaskType.IMAGE_CLASSIFICATION, Project.TaskType.IMAGE_BOXES),
}
SETTINGS_FIELDS = tuple(name for _, names in GROUPS for name in names)
GOLD_LIST_LIMIT = 100


class ProjectSettingsForm(forms.ModelForm):
    """Parses and checks the settings; never saves (the view calls project_update). `requester`
    is the user saving them: what they may set can depend on them (a start_from of a project
    they manage)."""

    # The model's check constraints as field bounds, so that a value out of range is named by
    # its field (a constraint's own message names only the constraint).
    BOUNDS = {
        "overlap": (1, 32767),
        "lease_seconds": (10, None),
        "gold_share": (0, 0.5),
        "random_share": (0, 0.5),
        "gold_pause_below": (0, 1),
    }

    class Meta:
        model = Project
        fields = SETTINGS_FIELDS
        widgets = {
            "instructions": forms.Textarea(attrs={"rows": 5}),
            "training_params": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args, requester=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.requester = requester
        for name, (low, high) in self.BOUNDS.items():
            field = self.fields[name]
            field.validators.append(MinValueValidator(low))
            field.widget.attrs["min"] = low
            if high is not None:
                field.validators.append(MaxValueValidator(high))
                field.widget.attrs["max"] = high
        for name in ("gold_share", "gold_pause_below", "random_share"):
            self.fields[name].widget.attrs["step"] = "0.01"
        if TRAINING_PARAMS_DESCRIBE:
            field = self.fields["training_params"]
            field.help_text = f"{field.help_text} {TRAINING_PARAMS_DESCRIBE[0](self.instance)}."
        if self.instance.task_type != Project.TaskType.TEXT_CLASSIFICATION:
            del self.fields["text_model"]
        else:
            self._offer_text_models()
        # Another type's settings are not on the page: an absent checkbox must not read as "off".
        for title, kinds in TYPE_GROUPS.items():
            if self.instance.task_type not in kinds:
                for name in dict(GROUPS)[title]:
                    del self.fields[name]

    def _offer_text_models(self):
        """Only the text models that can run here are offered; the help says why one is not."""
        field = self.fields["text_model"]
        missing = {}
        for value, _ in field.choices:
            why = text_model_unavailable(value) if value != "ngrams" else None
            if why and value != self.instance.text_model:
                missing[value] = why
        if missing:
            field.choices = [(v, label) for v, label in field.choices if v not in missing]
            field.help_text = f"{field.help_text} Not offered: {'; '.join(missing.values())}."

    def clean_training_params(self):
        # Before the model's own checks: a version the requester may not use must read as one
        # that does not exist, whatever else is wrong with it. self.instance is still the stored row.
        params = self.cleaned_data["training_params"]
        why = training_params_refused(project=self.instance, params=params, user=self.requester)
        if why:
            raise ValidationError(why)
        return params

    def clean(self):
        data = super().clean()
        if data.get("consensus_method") == DAWID_SKENE and self.instance.multi_label:
            self.add_error("consensus_method", SINGLE_LABEL_ONLY)
        return data


class GoldMarkForm(forms.Form):
    """An item (by external id) and its true value, chosen among the project's labels."""

    item = forms.CharField(max_length=255, label="Item", help_text="The item's external id.")

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        choices = [(label.name, label.name) for label in label_list(project=project)]
        if not project.is_classification:
            example = (
                '{"boxes": [{"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.25, "label": "…"}]}'
                if project.task_type == Project.TaskType.IMAGE_BOXES
                else '{"spans": [{"start": 0, "end": 5, "label": "…"}]}'
            )
            self.fields["labels"] = forms.JSONField(
                label="True value (JSON)",
                help_text=f"For example {example}",
                widget=forms.Textarea(attrs={"rows": 3}),
            )
        elif project.multi_label:
            self.fields["labels"] = forms.MultipleChoiceField(
                choices=choices, label="True value", widget=forms.CheckboxSelectMultiple
            )
        else:
            self.fields["labels"] = forms.ChoiceField(choices=choices, label="True value")

    def clean_item(self) -> int:
        external_id = self.cleaned_data["item"].strip()
        item_id = item_list(project=self.project).filter(external_id=external_id).values_list("pk", flat=True)
        item_id = item_id.first()
        if item_id is None:
            raise ValidationError(f"this project has no item with external id {external_id!r}")
        return item_id

    def value(self) -> dict:
        labels = self.cleaned_data["labels"]
        if not self.project.is_classification:
            return labels  # the whole value, checked by annotate.gold.item_gold_set
        return {"choices": list(labels) if isinstance(labels, list) else [labels]}


def _form_errors(form: forms.Form, error: ValidationError, *, rename: dict[str, str] | None = None) -> None:
    """A service's refusal onto the form: under the field it names (through `rename`) when the
    form has it, else above the form."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for field, field_messages in error.message_dict.items():
        field = (rename or {}).get(field, field)
        form.add_error(field if field in form.fields else None, field_messages)


def _page(
    request: HttpRequest,
    membership: Membership,
    *,
    form: ProjectSettingsForm | None = None,
    gold_form: GoldMarkForm | None = None,
    status: int = 200,
) -> HttpResponse:
    project = membership.project
    form = form or ProjectSettingsForm(instance=project)
    gold = item_list(project=project).filter(pick_kind=PickKind.GOLD)
    context = {
        "project": project,
        "membership": membership,
        "form": form,
        "groups": [
            (title, [form[name] for name in names if name in form.fields])
            for title, names in GROUPS
            if project.task_type in TYPE_GROUPS.get(title, (project.task_type,))
        ],
        "gold_form": gold_form or GoldMarkForm(project=project),
        "gold_items": gold.only("id", "external_id", "text", "image", "gold_value")[:GOLD_LIST_LIMIT],
        "gold_count": gold.count(),
        "gold_list_limit": GOLD_LIST_LIMIT,
    }
    return render(request, "annotate/settings.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request: HttpRequest, project_id: int) -> HttpResponse:
    """The settings page; a POST saves the settings that changed, all or nothing."""
    membership = page_membership(request, project_id, needs="manage")
    project = membership.project
    if request.method == "GET":
        return _page(request, membership)
    method_before = project.consensus_method
    # The form writes its values onto this copy; project_update compares with the stored row.
    form = ProjectSettingsForm(request.POST, instance=copy.copy(project), requester=request.user)
    if form.is_valid():
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            project = project_update(project=project, **changed)
        except ValidationError as error:
            _form_errors(form, error)
        else:
            messages.success(request, "Settings saved." if changed else "Nothing changed.")
            if project.consensus_method != method_before:
                # project_update has queued the recompute (on commit): the final labels follow
                # the new method, Dawid–Skene or the majority again.
                messages.info(
                    request, "The final labels are being recomputed by the new method, in the background."
                )
            return redirect("annotate:settings", project_id=project_id)
    return _page(request, membership, form=form, status=400)


@login_required
@require_POST
def consensus_recompute(request: HttpRequest, project_id: int) -> HttpResponse:
    """Recompute the final labels by the project's consensus method now (in the background)."""
    membership = page_membership(request, project_id, needs="manage")
    messages.info(request, project_consensus_request(project=membership.project).detail.capitalize() + ".")
    return redirect("annotate:settings", project_id=project_id)


@login_required
@require_POST
def gold_mark(request: HttpRequest, project_id: int) -> HttpResponse:
    """Make an item gold with its true value (or give a gold item a new value)."""
    membership = page_membership(request, project_id, needs="manage")
    project = membership.project
    form = GoldMarkForm(request.POST, project=project)
    if form.is_valid():
        try:
            item = item_gold_set(project=project, item_id=form.cleaned_data["item"], value=form.value())
        except ValidationError as error:
            _form_errors(form, error, rename={"gold_value": "labels"})
        else:
            messages.success(
                request,
                f"Item {item.external_id} is gold, with the true value {value_text(item.gold_value)}.",
            )
            return redirect("annotate:settings", project_id=project_id)
    return _page(request, membership, gold_form=form, status=400)


@login_required
@require_POST
def gold_clear(request: HttpRequest, project_id: int, item_id: int) -> HttpResponse:
    """Make a gold item ordinary again: its final label is its voters' once more."""
    membership = page_membership(request, project_id, needs="manage")
    if not item_list(project=membership.project).filter(pk=item_id).exists():
        raise Http404("No such item.")
    try:
        item = item_gold_clear(project=membership.project, item_id=item_id)
    except ValidationError as error:  # not a gold item
        messages.error(request, " ".join(error.messages))
        return _page(request, membership, status=400)
    messages.success(request, f"Item {item.external_id} is no longer gold.")
    return redirect("annotate:settings", project_id=project_id)
