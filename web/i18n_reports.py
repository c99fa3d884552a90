"""Interface text for reports pages (merged into web.i18n)."""

MESSAGES: dict[str, dict[str, str]] = {"es": {}, "en": {}}
