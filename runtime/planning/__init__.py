"""Planning as a team pattern (docs/planning.md): a ``kind: planner`` agent writes a typed plan (:mod:`.model`),
the runtime runs its steps as tasks, in parallel where independent (:mod:`.runner`), and the planner revises the
plan when a step fails or contradicts it (:mod:`.revise`); its tools are in :mod:`.tools`."""
