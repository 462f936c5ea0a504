"""Session services: the host of logical actors, the supervisor, blackboard, task registry, approvals, durability."""

__all__: list[str] = []
