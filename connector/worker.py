"""The RQ worker class `make run` uses: set up once in the parent, fork per job.

A forking worker imports and builds nothing per job if the parent already did: the runtime
(engine, registry) and the schema validators are made here, before the first fork.
"""

from __future__ import annotations

from typing import Any

import rq

from connector import runtime, schemas


class Worker(rq.Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        warm(runtime.current())


def warm(rt: runtime.Runtime) -> None:
    """Build the validators every run needs, so no job pays for it."""
    import connector.jobs  # noqa: F401  (imported by name in each job otherwise)

    for spec in rt.registry.triggers.values():
        schemas.validator(spec.output_schema)
    for action in rt.registry.actions.values():
        schemas.validator(action.input_schema)
        schemas.validator(action.output_schema)
    schemas.validator("flow.json")
