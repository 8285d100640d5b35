"""Who may frame the checkout, where its messages go, and /docs served without a CDN (audit 16)."""

from __future__ import annotations

from tests.integration.test_orders_support import Api, api

__all__ = ["api"]  # the fixture, imported so that pytest finds it here


def _ancestors(csp: str) -> str:
    [directive] = [d.strip() for d in csp.split(";") if d.strip().startswith("frame-ancestors")]
    return directive.removeprefix("frame-ancestors").strip()


async def test_the_checkout_may_be_framed_by_paygate_and_the_announced_shop_only(api: Api) -> None:
    m = await api.merchant()
    order = await api.order(m)
    path = f"/checkout/{order['id']}"
    shop = await api.http.get(path, params={"embed": 1, "origin": "https://shop.example:8443"})
    assert shop.status_code == 200
    assert _ancestors(shop.headers["content-security-policy"]) == "'self' https://shop.example:8443"
    assert 'data-parent-origin="https://shop.example:8443"' in shop.text
    assert "x-frame-options" not in shop.headers

    bare = await api.http.get(path)  # a link as sent by e-mail: no other site may frame it
    assert _ancestors(bare.headers["content-security-policy"]) == "'self'"
    assert 'data-parent-origin=""' in bare.text  # checkout.js then posts to its own origin, never "*"

    # a control character is refused before the page is made at all (API.md §19, http/parameters.py)
    assert (await api.http.get(path, params={"origin": "https://a.example\n"})).status_code == 400
    for bad in ("*", "https://a.example; script-src *", "https://a.example/path",
                "javascript:alert(1)", "https://a.example 'unsafe-inline'"):
        resp = await api.http.get(path, params={"origin": bad})
        assert resp.status_code == 200
        assert _ancestors(resp.headers["content-security-policy"]) == "'self'", bad
        assert 'data-parent-origin=""' in resp.text

    # the error pages show inside the SDK's modal too, so they follow the same rule
    missing = await api.http.get("/checkout/ord_nope", params={"origin": "https://shop.example"})
    assert missing.status_code == 404
    assert _ancestors(missing.headers["content-security-policy"]) == "'self' https://shop.example"


async def test_the_dashboard_is_never_framed(api: Api) -> None:
    login = await api.http.get("/dashboard/login")
    assert _ancestors(login.headers["content-security-policy"]) == "'none'"
    assert login.headers["x-frame-options"] == "DENY"


async def test_docs_are_served_from_this_process(api: Api) -> None:
    page = await api.http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text and "http" not in page.text  # no inline script, nothing from elsewhere
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    for name, media in (("swagger-ui-bundle.js", "application/javascript"), ("swagger-ui.css", "text/css"),
                        ("start.js", "application/javascript")):
        asset = await api.http.get(f"/docs/assets/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(media), name
    assert b"SwaggerUIBundle" in (await api.http.get("/docs/assets/swagger-ui-bundle.js")).content
    for name in ("index.html", "swagger-initializer.js", "../__init__.py", "..%2f__init__.py"):
        assert (await api.http.get(f"/docs/assets/{name}")).status_code == 404, name
