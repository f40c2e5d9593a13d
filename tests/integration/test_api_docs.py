"""The API's documentation (issue 12, point 3): every operation names the error answers it can give, and
the docs page is where a FastAPI user looks for it."""

from __future__ import annotations

from tests.harness import Engine


async def test_every_operation_documents_its_error_answers(engine: Engine) -> None:
    spec = (await engine.api.get("/openapi.json")).json()
    silent = [
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if not any(code[0] in "45" for code in operation.get("responses", {}))
    ]
    assert silent == []
    assert len(spec["paths"]) >= 20  # the whole API is described, not an empty document


async def test_docs_and_redoc_lead_to_the_bundled_docs_page(engine: Engine) -> None:
    for path in ("/docs", "/redoc"):
        response = await engine.api.get(path)
        assert (response.status_code, response.headers["location"]) == (308, "/api/docs")
    page = await engine.api.get("/api/docs")
    assert page.status_code == 200 and "/api/docs/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()  # bundled assets only
