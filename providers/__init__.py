"""Connection providers (connector.connections): one module per type, listed explicitly."""

from providers import http, hubspot, pipedrive, salesforce, zoho

ALL = (http.SPEC, hubspot.SPEC, pipedrive.SPEC, zoho.SPEC, salesforce.SPEC)
