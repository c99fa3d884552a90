"""The automation engine: specs, registry, schemas, mapping, flows, runner, jobs and storage."""
