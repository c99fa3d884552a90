"""Connection providers (connector.connections): one module per type, listed explicitly."""

from providers import http, pipedrive

ALL = (http.SPEC, pipedrive.SPEC)
