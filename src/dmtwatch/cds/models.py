"""The CDS Hooks 2.0 JSON shapes, as pydantic models.

What we send (discovery, cards, actions) forbids unknown fields, so a typo cannot reach
an EHR; what we receive (hook requests, feedback) keeps unknown fields, because clients
add fields between versions and a request must not fail on them. The specification says
empty values are omitted, never null: `dump` drops unset and None fields.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Sent(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Received(BaseModel):
    model_config = ConfigDict(extra="allow")


def dump(model: BaseModel) -> dict[str, Any]:
    """JSON-ready dict without the fields the specification says to omit."""
    return model.model_dump(mode="json", exclude_none=True, by_alias=True)


class Coding(Sent):
    code: str
    system: str
    display: str | None = None


class Service(Sent):
    hook: str
    title: str | None = None
    description: str
    id: str
    prefetch: dict[str, str] | None = None
    usageRequirements: str | None = None
    extension: dict[str, Any] | None = None


class Discovery(Sent):
    services: list[Service]


class FhirAuthorization(Received):
    access_token: str = Field(min_length=1)
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str
    subject: str
    patient: str | None = None


class HookRequest(Received):
    hook: str = Field(min_length=1)
    hookInstance: str = Field(min_length=1)
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    # a value is a resource, null (nothing to prefetch) or, in some examples, a bare id
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None


class Source(Sent):
    label: str
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None


class Action(Sent):
    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resourceId: str | None = None

    @model_validator(mode="after")
    def _target(self) -> Action:
        if self.type != "delete" and self.resource is None:
            raise ValueError(f"a {self.type} action needs the resource")
        return self


class Suggestion(Sent):
    label: str
    uuid: str | None = None
    isRecommended: bool | None = None
    actions: list[Action] | None = None


class Link(Sent):
    label: str
    url: str
    type: Literal["absolute", "smart"]
    appContext: str | None = None
    autolaunchable: bool | None = None


class Card(Sent):
    uuid: str | None = None
    summary: str = Field(max_length=139)
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[Coding] | None = None
    links: list[Link] | None = None

    @model_validator(mode="after")
    def _selection(self) -> Card:
        if self.suggestions and self.selectionBehavior is None:
            raise ValueError("a card with suggestions needs selectionBehavior")
        return self


class CardsResponse(Sent):
    cards: list[Card]
    systemActions: list[Action] | None = None


class AcceptedSuggestion(Received):
    id: str


class OverrideReason(Received):
    reason: Coding | None = None
    userComment: str | None = None


class Feedback(Received):
    card: str
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: str


class FeedbackRequest(Received):
    feedback: list[Feedback]


# --- client authentication: the JWT an EHR signs for every call ---------------------------


class JwtHeader(Received):
    alg: str
    typ: str | None = None
    kid: str
    jku: str | None = None


class JwtClaims(Received):
    iss: str
    sub: str | None = None
    aud: str | list[str]
    exp: int
    iat: int
    jti: str
    tenant: str | None = None


class Jwk(Received):
    """One public (or, in the specification's example, private) key; the key material
    (crv/x/y for EC, n/e for RSA) stays in the extra fields, read by PyJWT."""

    kty: Literal["EC", "RSA"]
    kid: str | None = None
    use: str | None = None
    alg: str | None = None


class JwkSet(Received):
    keys: list[Jwk]
