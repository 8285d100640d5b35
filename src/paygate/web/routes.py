"""The browser surfaces (API.md §11): hosted checkout, the JS SDK and static files, and the dashboard.

None of these routes is part of the OpenAPI document: they serve pages, not the merchant API.
"""

from __future__ import annotations

from fastapi import APIRouter

from paygate.web import (
    assets,
    auth,
    authentication,
    checkout,
    dashboard,
    dashboard_customers,
    dashboard_money,
    dashboard_routing,
    docs_page,
)

router = APIRouter(include_in_schema=False)
router.include_router(assets.router)
router.include_router(checkout.router)
router.include_router(auth.router)
router.include_router(authentication.router)  # the way back from the bank's challenge (§15)
router.include_router(dashboard.router)
router.include_router(docs_page.router)
router.include_router(dashboard_routing.router)
router.include_router(dashboard_customers.router)
router.include_router(dashboard_money.router)
