"""The explicit registry of triggers and actions: built from the ALL tuples, no import magic."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

from connector.errors import ConfigurationError
from connector.spec import ActionSpec, ServiceInstaller, TemplateSpec, TriggerKind, TriggerSpec


@dataclass(frozen=True)
class Registry:
    triggers: dict[str, TriggerSpec]
    actions: dict[str, ActionSpec]
    # What the domains register in the runtime's service registry when it is built.
    installers: tuple[ServiceInstaller, ...] = ()
    templates: dict[str, TemplateSpec] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        triggers: Iterable[TriggerSpec],
        actions: Iterable[ActionSpec],
        installers: Iterable[ServiceInstaller] = (),
        templates: Iterable[TemplateSpec] = (),
    ) -> Registry:
        t: dict[str, TriggerSpec] = {}
        a: dict[str, ActionSpec] = {}
        for spec in triggers:
            if spec.key in t:
                raise ValueError(f"trigger {spec.key!r} is registered twice")
            t[spec.key] = spec
        for action in actions:
            if action.key in a:
                raise ValueError(f"action {action.key!r} is registered twice")
            a[action.key] = action
        made: dict[str, TemplateSpec] = {}
        for template in templates:
            if template.key in made:
                raise ValueError(f"template {template.key!r} is registered twice")
            made[template.key] = template
        return cls(t, a, tuple(installers), made)

    def event_triggers(self, topic: str) -> list[TriggerSpec]:
        """The event triggers an outbox event of `topic` feeds."""
        return [
            t for t in self.triggers.values() if t.kind is TriggerKind.EVENT and topic in t.topics
        ]

    def trigger(self, key: str) -> TriggerSpec:
        try:
            return self.triggers[key]
        except KeyError:
            known = ", ".join(sorted(self.triggers))
            raise ConfigurationError(f"unknown trigger {key!r}; known triggers: {known}") from None

    def action(self, key: str) -> ActionSpec:
        try:
            return self.actions[key]
        except KeyError:
            known = ", ".join(sorted(self.actions))
            raise ConfigurationError(f"unknown action {key!r}; known actions: {known}") from None


@cache
def default_registry() -> Registry:
    """The registry of everything shipped in triggers/ and actions/."""
    import actions
    import templates
    import triggers

    return Registry.build(triggers.ALL, actions.ALL, actions.SERVICES, templates.ALL)
