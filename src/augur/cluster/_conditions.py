"""Standard Kubernetes conditions: one per type, the transition time kept while unchanged."""

from __future__ import annotations

from collections.abc import Sequence

from augur.cluster._base import Condition


def set_condition(conditions: Sequence[Condition], new: Condition, now: str) -> list[Condition]:
    """``conditions`` with ``new`` in place of its type's entry. ``lastTransitionTime``
    moves only when the status changes (as ``kubectl wait`` and dashboards expect)."""
    out: list[Condition] = []
    replaced = False
    for old in conditions:
        if old.type != new.type:
            out.append(old)
            continue
        replaced = True
        since = old.last_transition_time if old.status == new.status else now
        out.append(new.model_copy(update={"last_transition_time": since or now}))
    if not replaced:
        out.append(new.model_copy(update={"last_transition_time": now}))
    return out


class ConditionBook:
    """The conditions of one status being written: each ``set`` replaces its type's entry
    for this generation, at this time."""

    def __init__(self, old: Sequence[Condition], generation: int | None, now: str) -> None:
        self.items = list(old)
        self.generation = generation
        self.now = now

    def set(self, kind: str, ok: bool, reason: str, message: str) -> None:
        new = Condition(
            type=kind,
            status="True" if ok else "False",
            reason=reason,
            message=message,
            observed_generation=self.generation,
        )
        self.items = set_condition(self.items, new, self.now)


def condition(conditions: Sequence[Condition], kind: str) -> Condition | None:
    """The condition of type ``kind``, if any."""
    return next((c for c in conditions if c.type == kind), None)


__all__ = ["ConditionBook", "condition", "set_condition"]
