"""What the LangChain handler keeps about a run it recorded, until the run ends."""

from __future__ import annotations

from uuid import UUID

__all__ = ["Span"]


class Span:
    """One LangChain run we recorded: what its end and its children need to know."""

    __slots__ = (
        "key",
        "kind",
        "name",
        "node",
        "owns_run",
        "parent_span_id",
        "run_id",
        "sampled",
        "span_id",
        "started",
    )

    def __init__(  # noqa: PLR0917 - built once per span: positional is the cheap call
        self,
        uuid: UUID,
        parent_span_id: str | None,
        run_id: str | None,
        name: str,
        node: str | None,
        kind: str,
        started: int,
    ) -> None:
        self.key = uuid.int
        self.span_id = str(uuid)
        self.parent_span_id = parent_span_id
        self.run_id = run_id
        self.name = name
        self.node = node
        self.kind = kind
        self.owns_run = False
        self.sampled = True
        self.started = started
