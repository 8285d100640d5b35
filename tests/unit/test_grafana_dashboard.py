"""docs/grafana-dashboard.json charts only metrics that paygate exports, under their exported names."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import paygate.api.metrics
import paygate.worker.metrics

MODULES = (paygate.api.metrics, paygate.worker.metrics)  # importing them registers their metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def exported() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("paygate_"):
            names |= {s.name for s in family.samples} | {family.name}
            if family.type == "histogram":
                names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
            if family.type == "counter":
                names.add(f"{family.name}_total")
    return names


def test_every_metric_in_the_dashboard_is_exported() -> None:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    used = {name for e in exprs for name in re.findall(r"\bpaygate_[a-z_]+", e)}
    assert used, "the dashboard charts no paygate metric"
    assert used - exported() == set()
    # and every worker gauge has a panel
    for gauge in ("paygate_webhook_queue_depth", "paygate_webhook_delivery_lag_seconds", "paygate_recovery_backlog",
                  "paygate_acquirer_up", "paygate_reconciliation_exceptions_open"):
        assert gauge in used
