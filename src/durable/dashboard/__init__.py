"""The dashboard: a Preact SPA built from `dashboard/` into `static/`, served by `mount`."""
