"""Placeholder router for the browser surfaces (dashboard, hosted checkout, SDK)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
