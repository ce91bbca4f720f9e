"""Versioned rule-set files: the rule text with its name, version, parent, author and
the backtest evidence that let it in. A file holding only rule text is read as version 0
of a rule set named after the file."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from augur.decision._program import RuleProgram
from augur.rules._compile import compile_rules
from augur.rules._parse import Problem, RuleError, Rules, parse


class RuleSet(BaseModel):
    """A named, versioned rule set as stored in a file (YAML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")
    version: int = Field(default=0, ge=0, description="0: not yet through the gate.")
    parent: str | None = Field(default=None, description="name@version it was derived from.")
    created_by: str = Field(
        default="human", description="human, local-proposer, or the proposing model's name."
    )
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    rules: str = Field(description="The rule text (the language of augur.rules).")
    evidence: dict[str, Any] = Field(
        default_factory=dict, description="The walk-forward figures that admitted it."
    )

    @field_validator("rules")
    @classmethod
    def _parses(cls, text: str) -> str:
        parse(text)  # a RuleError is a ValueError: pydantic reports it under 'rules'
        return text

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def parsed(self) -> Rules:
        return parse(self.rules)

    def program(self) -> RuleProgram:
        """The rule set compiled for the decision engine."""
        return compile_rules(self.parsed(), self.name, self.version, self.rules)


def _stem_name(path: Path) -> str:
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in path.stem.lower())
    return name.strip("._-") or "rules"


def load_rule_set(path: str | Path) -> RuleSet:
    """A rule-set file (YAML with ``rules:``) or a file holding just rule text.

    Raises :class:`RuleError` (problems in the rules, with line and column within the
    rule text) or ``ValueError`` (the file, or a field of a rule-set file, is wrong)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    data = _as_mapping(text)
    if data is None:
        parse(text)
        return RuleSet(name=_stem_name(path), rules=text)
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, RuleError):
                raise cause from None
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"{path}: not a valid rule-set file: {details}") from None


def _as_mapping(text: str) -> dict[str, Any] | None:
    """The file as a rule-set mapping, or None when it is plain rule text."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if isinstance(data, dict) and "rules" in data:
        return data
    return None


def save_rule_set(rule_set: RuleSet, path: str | Path) -> Path:
    """Write ``rule_set`` as YAML, atomically (a temporary file renamed over the target)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = rule_set.model_dump(mode="json")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


__all__ = ["Problem", "RuleSet", "load_rule_set", "save_rule_set"]
