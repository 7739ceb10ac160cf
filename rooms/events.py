"""What clients publish into a chat channel (docs/social.md, "Chat"), validated."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from hub.errors import FieldError, ValidationFailed

MAX_TEXT = 4000
MAX_MENTIONS = 20


def _has_text(text: str) -> str:
    if not text.strip():
        raise ValueError("the text is blank")
    return text


def _is_emoji(emoji: str) -> str:
    # Emoji sequences carry joiners and variation selectors; whitespace and controls are out.
    if any(c.isspace() or (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0) for c in emoji):
        raise ValueError("an emoji has no spaces or control characters")
    return emoji


Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_has_text)]
Seq = Annotated[int, Field(ge=1, le=2**62)]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NewMessage(_Event):
    type: Literal["message"] = "message"
    text: Text = Field(description="markdown")
    reply_to: Seq | None = None
    mentions: list[Seq] = Field(default_factory=list, max_length=MAX_MENTIONS)


class Edit(_Event):
    type: Literal["edit"]
    target: Seq
    text: Text


class Delete(_Event):
    type: Literal["delete"]
    target: Seq


class React(_Event):
    type: Literal["react"]
    target: Seq
    emoji: Annotated[str, Field(min_length=1, max_length=32), AfterValidator(_is_emoji)]


ChatEvent = NewMessage | Edit | Delete | React

_KINDS: dict[str, type[ChatEvent]] = {
    "message": NewMessage,
    "edit": Edit,
    "delete": Delete,
    "react": React,
}


def parse_event(data: dict[str, Any]) -> ChatEvent:
    """The event a publish's ``data`` asks for.

    Raises:
        ValidationFailed: an unknown ``type`` or a malformed field (named ``data.<field>``).
    """
    kind = data.get("type", "message")
    model = _KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ValidationFailed(
            [FieldError("data.type", "must be message, edit, delete, react or typing")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            where = ".".join(["data", *(str(p) for p in err["loc"])])
            message = err["msg"].removeprefix("Value error, ")
            errors.append(FieldError(where, message, err["type"]))
        raise ValidationFailed(errors) from None
