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


def condition(conditions: Sequence[Condition], kind: str) -> Condition | None:
    """The condition of type ``kind``, if any."""
    return next((c for c in conditions if c.type == kind), None)


__all__ = ["condition", "set_condition"]
