"""Import and export jobs: the upload and its options, the export's, and the jobs' progress."""

from django.urls import reverse
from rest_framework import serializers

from annotate import exporting, importing
from annotate.models import ExportJob, ImportJob


class ImportInput(serializers.Serializer):
    """The upload and its options as sent; importing.import_options_validate judges them."""

    file = serializers.ListField(
        child=serializers.FileField(),
        allow_empty=False,
        help_text='One file; several `file` parts only for format "images".',
    )
    format = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=f"One of {', '.join(importing.FORMATS)}; told from the (first) file's name when left out.",
    )
    text_column = serializers.CharField(required=False, allow_blank=True)
    image_column = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Image projects (CSV, JSON, JSONL): the column or field holding each image's http(s)"
        ' URL ("image_url" by default); the project must have fetch_image_urls on.',
    )
    id_column = serializers.CharField(
        required=False, allow_blank=True, help_text="The external id column or field."
    )
    label_column = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Existing labels, imported as counted annotations by the user source:<label_source>.",
    )
    prediction_column = serializers.CharField(
        required=False, allow_blank=True, help_text="Proposals shown to annotators."
    )
    gold_column = serializers.CharField(
        required=False, allow_blank=True, help_text="True values: rows with one become gold items."
    )
    label_source = serializers.CharField(required=False, allow_blank=True)
    import_as = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text='COCO, YOLO, CoNLL, spaCy: "labels" (the default) or "predictions" (proposals).',
    )

    def options(self) -> dict:
        """The import options given (blank ones are dropped by the service)."""
        return {
            name: self.validated_data[name] for name in importing.OPTION_NAMES if name in self.validated_data
        }


class ImportJobOutput(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = ["id", "status", "progress", "rows_done", "rows_total", "items_created", "error", "url"]
        read_only_fields = fields

    def get_url(self, job: ImportJob) -> str:
        return reverse("api:import-detail", kwargs={"project_id": job.project_id, "job_id": job.pk})


class ExportInput(serializers.Serializer):
    format = serializers.ChoiceField(choices=exporting.FORMATS, default="json")
    labeled_only = serializers.BooleanField(
        default=False, help_text="Only items with at least one annotation."
    )
    reviewed_only = serializers.BooleanField(
        default=False, help_text="Only items whose final label a reviewer decided (source review)."
    )


class ExportJobOutput(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField(help_text="Null until the job has succeeded.")

    class Meta:
        model = ExportJob
        fields = ["id", "status", "progress", "items_written", "error", "url", "download_url"]
        read_only_fields = fields

    def get_url(self, job: ExportJob) -> str:
        return reverse("api:export-detail", kwargs={"project_id": job.project_id, "job_id": job.pk})

    def get_download_url(self, job: ExportJob) -> str | None:
        if job.status != ExportJob.Status.SUCCEEDED or not job.file:
            return None
        return reverse("api:export-download", kwargs={"project_id": job.project_id, "job_id": job.pk})
