"""How the server hands out the web app: routes, headers, package data (no browser needed)."""

from __future__ import annotations

import httpx
from rapport_server.webapp import STATIC_DIR


async def test_app_root_redirects_and_serves_the_page_locked_down(web_url: str) -> None:
    async with httpx.AsyncClient(base_url=web_url) as http:
        r = await http.get("/app")
        assert r.status_code == 308 and r.headers["location"] == "/app/"
        r = await http.get("/app/")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert r.headers["referrer-policy"] == "no-referrer"
        assert '<script type="module" src="/app/static/js/app.js">' in r.text


async def test_invitation_links_open_the_app(web_url: str) -> None:
    async with httpx.AsyncClient(base_url=web_url) as http:
        r = await http.get("/app/invite/AbCdEfGh12345678")
        assert r.status_code == 200 and '<main id="main"' in r.text


async def test_static_files_are_served_as_javascript_and_nothing_outside(web_url: str) -> None:
    async with httpx.AsyncClient(base_url=web_url) as http:
        for path in ("js/app.js", "js/protocol.js", "vendor/noble-ed25519.js"):
            r = await http.get(f"/app/static/{path}")
            assert r.status_code == 200, path
            assert r.headers["content-type"].startswith("text/javascript"), path
            assert r.headers["x-content-type-options"] == "nosniff"
        r = await http.get("/app/static/../__init__.py")
        assert r.status_code == 404
        r = await http.get("/app/static/%2e%2e/__init__.py")
        assert r.status_code == 404
        r = await http.get("/app/static/js/missing.js")
        assert r.status_code == 404


async def test_web_app_routes_stay_out_of_the_openapi_document(web_url: str) -> None:
    async with httpx.AsyncClient(base_url=web_url) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith("/app")]


def test_every_module_the_page_imports_is_shipped() -> None:
    """Relative imports between the committed modules resolve to committed files."""
    import re

    for source in (STATIC_DIR / "js").glob("*.js"):
        for target in re.findall(r'from "(\.{1,2}/[^"]+)"', source.read_text()):
            assert (source.parent / target).resolve().is_file(), f"{source.name} -> {target}"
