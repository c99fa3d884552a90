"""Connection providers (connector.connections): one module per type, listed explicitly."""

from providers import http, pipedrive, salesforce, zoho

ALL = (http.SPEC, pipedrive.SPEC, zoho.SPEC, salesforce.SPEC)
