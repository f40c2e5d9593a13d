"""Print the engine's OpenAPI document (what `/openapi.json` serves) as sorted, indented JSON.

It comes from `durable.api.app.create_app` itself, with default settings and no database, so it needs
no running engine. `npm run gen:api` feeds it to openapi-typescript, which writes `src/api.gen.ts`;
`tests/e2e/test_dashboard_truth.py` fails when that file differs from a fresh generation.

    ../.venv/bin/python scripts/openapi.py > openapi.json
"""

from __future__ import annotations

import json
import sys

from durable.api.app import create_app
from durable.config import load


def document() -> dict[str, object]:
    app = create_app(None, load({}))  # type: ignore[arg-type]  # the document needs no database
    return app.openapi()


if __name__ == "__main__":
    json.dump(document(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
