"""Typed views of FLORA's answers, liberal in what they accept.

FLORA's pages disagree (summary or full list items, snake_case or camelCase, progress as a fraction or a percentage,
create answers with or without a status), so every model reads all the documented spellings and keeps what it does not
know in `model_extra` rather than failing.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ASSET_STATUSES", "RUN_STATUSES", "Asset", "Run", "RunOutput", "RunStatus", "Technique", "TechniqueIO",
           "UploadTarget", "Workspace"]

RunStatus = Literal["pending", "running", "completed", "failed"]
"""FLORA's run statuses: every other layer's status vocabulary builds on these."""
RUN_STATUSES: frozenset[str] = frozenset(get_args(RunStatus))
_STATUS_SYNONYMS = {
    "queued": "pending", "created": "pending", "submitted": "pending",
    "in_progress": "running", "processing": "running", "started": "running",
    "succeeded": "completed", "success": "completed", "complete": "completed",
    "error": "failed", "errored": "failed", "cancelled": "failed", "canceled": "failed",
}
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TechniqueIO(_Model):
    """One input or output of a technique."""

    id: str
    name: str = ""
    type: str = "text"
    description: str | None = None
    specified_aspect_ratio: str | None = Field(
        default=None, validation_alias=AliasChoices("specified_aspect_ratio", "specifiedAspectRatio")
    )
    specified_duration: float | None = Field(
        default=None, validation_alias=AliasChoices("specified_duration", "specifiedDuration")
    )
    optional: bool = False
    accepts_element: bool = Field(default=False, validation_alias=AliasChoices("accepts_element", "acceptsElement"))
    allow_multiple: bool = Field(default=False, validation_alias=AliasChoices("allow_multiple", "allowMultiple"))

    @model_validator(mode="after")
    def _name_defaults_to_id(self) -> TechniqueIO:
        if not self.name:
            self.name = self.id
        return self

    @field_validator("optional", "accepts_element", "allow_multiple", mode="before")
    @classmethod
    def _none_is_false(cls, value: Any) -> Any:
        return False if value is None else value


class Technique(_Model):
    """A technique as listed or retrieved. `inputs is None` marks a summary item whose schema must be fetched."""

    technique_id: str = Field(validation_alias=AliasChoices("technique_id", "techniqueId", "id"))
    slug: str | None = None
    name: str = ""
    description: str | None = None
    run_cost: float | None = Field(default=None, validation_alias=AliasChoices("run_cost", "runCost"))
    inputs: list[TechniqueIO] | None = None
    outputs: list[TechniqueIO] = Field(default_factory=list)

    @property
    def is_summary(self) -> bool:
        """Whether this is a list item without inputs, whose full schema must be fetched."""
        return self.inputs is None

    @property
    def ref(self) -> str:
        """The path segment that names this technique: its slug when it has one, else its id."""
        return self.slug or self.technique_id

    @field_validator("outputs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class RunOutput(_Model):
    """One output file of a run."""

    output_id: str = Field(default="", validation_alias=AliasChoices("output_id", "outputId", "id"))
    type: str = "text"
    url: str


class Run(_Model):
    """A run, from a create or retrieve answer. `progress` is normalized to 0-100."""

    run_id: str = Field(validation_alias=AliasChoices("run_id", "runId", "id"))
    status: RunStatus = "pending"
    progress: float | None = None
    created_at: float | None = Field(default=None, validation_alias=AliasChoices("created_at", "createdAt"))
    started_at: float | None = Field(default=None, validation_alias=AliasChoices("started_at", "startedAt"))
    completed_at: float | None = Field(default=None, validation_alias=AliasChoices("completed_at", "completedAt"))
    charged_cost: float | None = Field(default=None, validation_alias=AliasChoices("charged_cost", "chargedCost"))
    estimated_seconds: float | None = Field(
        default=None, validation_alias=AliasChoices("estimated_seconds", "estimatedSeconds")
    )
    outputs: list[RunOutput] = Field(default_factory=list)
    error_code: str | None = Field(default=None, validation_alias=AliasChoices("error_code", "errorCode"))
    error_message: str | None = Field(default=None, validation_alias=AliasChoices("error_message", "errorMessage"))
    poll_url: str | None = Field(default=None, validation_alias=AliasChoices("poll_url", "pollUrl"))
    technique_id: str | None = Field(default=None, validation_alias=AliasChoices("technique_id", "techniqueId"))

    @field_validator("status", mode="before")
    @classmethod
    def _known_status(cls, value: Any) -> Any:
        # Spellings other FLORA-compatible servers use for the documented four; anything else stays an error.
        return _STATUS_SYNONYMS.get(value.strip().lower(), value.strip().lower()) if isinstance(value, str) else value

    @field_validator("progress", mode="before")
    @classmethod
    def _progress_as_percent(cls, value: Any) -> Any:
        # FLORA's scale is undocumented: a value <= 1 is read as a fraction, a larger one as a percentage.
        if value is None or isinstance(value, bool):
            return None
        number = float(value)
        percent = number * 100.0 if number <= 1.0 else number
        return min(max(percent, 0.0), 100.0)

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs_none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="before")
    @classmethod
    def _nested_technique_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "technique_id" not in data and isinstance(data.get("technique"), dict):
            data = {**data, "technique_id": data["technique"].get("technique_id")}
        return data

    @property
    def is_terminal(self) -> bool:
        """Whether the run has finished, completed or failed, and will not change again."""
        return self.status in TERMINAL_STATUSES



class Workspace(_Model):
    """A workspace the key can use: runs and assets belong to one."""

    workspace_id: str = Field(validation_alias=AliasChoices("workspace_id", "workspaceId", "id"))
    name: str = ""
    role: str | None = None


ASSET_STATUSES: frozenset[str] = frozenset({"pending_upload", "ready", "failed"})


class UploadTarget(_Model):
    """Where a signed upload's bytes go: a presigned POST form (every field, then the file part `file_field`)."""

    url: str
    method: str = "POST"
    content_type: str = Field(default="multipart/form-data",
                              validation_alias=AliasChoices("content_type", "contentType"))
    file_field: str = Field(default="file", validation_alias=AliasChoices("file_field", "fileField"))
    form_fields: dict[str, str] = Field(default_factory=dict,
                                        validation_alias=AliasChoices("form_fields", "formFields", "fields"))

    @field_validator("form_fields", mode="before")
    @classmethod
    def _fields_as_text(cls, value: Any) -> Any:
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else value


class Asset(_Model):
    """A file in FLORA: `url` is set once `status` is `ready`; a signed reservation carries its upload target."""

    asset_id: str = Field(validation_alias=AliasChoices("asset_id", "assetId", "id"))
    status: str = "pending_upload"
    url: str | None = None
    uploaded_via: str | None = Field(default=None, validation_alias=AliasChoices("uploaded_via", "uploadedVia"))
    workspace_id: str | None = Field(default=None, validation_alias=AliasChoices("workspace_id", "workspaceId"))
    content_type: str | None = Field(default=None, validation_alias=AliasChoices("content_type", "contentType"))
    size_bytes: int | None = Field(default=None, validation_alias=AliasChoices("size_bytes", "sizeBytes"))
    width: int | None = None
    height: int | None = None
    name: str | None = None
    failure_message: str | None = Field(default=None,
                                        validation_alias=AliasChoices("failure_message", "failureMessage"))
    expires_at: str | float | None = Field(default=None, validation_alias=AliasChoices("expires_at", "expiresAt"))
    upload: UploadTarget | None = None
    upload_url: str | None = Field(default=None, validation_alias=AliasChoices("upload_url", "uploadUrl"))

    @field_validator("status", mode="before")
    @classmethod
    def _known_status(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        status = value.strip().lower()
        return {"pending": "pending_upload", "uploading": "pending_upload", "processing": "pending_upload",
                "error": "failed", "errored": "failed"}.get(status, status)

    @property
    def is_ready(self) -> bool:
        return self.status == "ready" and bool(self.url)

    @property
    def is_failed(self) -> bool:
        return self.status == "failed"
