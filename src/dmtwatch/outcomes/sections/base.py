"""What every audit section shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, PrivateAttr

from dmtwatch.outcomes.format import Table


class Section(BaseModel):
    """One section's result. Fields are its JSON keys, in the JSON's order; a key the
    calculation left out (e.g. `arr_pre` without person-time before day 0) stays out of
    `to_dict()`. Other keys read from a saved result are kept as they are."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)
    key: ClassVar[str]
    _methods: list[dict[str, str]] = PrivateAttr(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any) -> Any:
        """The section from its part of the audit JSON (absent or malformed parts: empty)."""
        return cls.model_validate(data if isinstance(data, Mapping) else {})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)

    def with_methods(self, methods: list[dict[str, str]]) -> Any:
        self._methods = methods
        return self

    @property
    def methods(self) -> list[dict[str, str]]:
        """The section's Methods paragraphs ({term, definition}), from settings.yaml and
        the run's options; empty for a section read back from JSON."""
        return list(self._methods)

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame()

    def plot(self) -> str | None:
        """The section's (first) figure as inline SVG, or None when there is nothing to draw."""
        return None

    def appendix(self, limit: int | None = None) -> list[Table]:
        return []
