"""The printed tables, rendered from the JSON report (so the README's numbers and the JSON always agree)."""

from __future__ import annotations

from typing import Any


def _row(cells: list[str], widths: list[int]) -> str:
    first, *rest = cells
    return f"{first:<{widths[0]}}" + "".join(f"  {c:>{w}}" for c, w in zip(rest, widths[1:], strict=True))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return [_row(header, widths), line, *(_row(r, widths) for r in rows)]


def _notes(s: dict[str, Any]) -> str:
    parts = []
    if s.get("offered_per_s"):
        parts.append(f"open loop, {s['offered_per_s']:g} arrivals/s offered (latency from each scheduled arrival)")
    if "payments_per_s" in s:
        parts.append(f"{s['payments_per_s']:g} payments/s")
    if "transactions_per_s" in s:
        parts.append(f"{s['transactions_per_s']:g} transactions/s")
    if s.get("replayed"):
        parts.append(f"{s['replayed']} replayed")
    lag = s.get("webhook_lag_ms")
    if lag and lag["events"]:
        parts.append(f"webhook lag p50 {lag['p50']:g} ms p99 {lag['p99']:g} ms "
                     f"({lag['delivered']}/{lag['events']} events)")
    statuses = ", ".join(f"{k}:{v}" for k, v in sorted(s["statuses"].items()))
    parts.append(f"statuses {statuses}")
    return "; ".join(parts)


def render(report: dict[str, Any]) -> str:
    scenarios: dict[str, Any] = report["scenarios"]
    opts = report["options"]
    out = [
        "",
        f"paygate bench: {report['machine']['cores']} cores, {opts['connections']} connections, "
        f"{opts['duration']:g} s per scenario (+{opts['warmup']:g} s warm-up), API processes: "
        f"{opts['api_workers']}, generator: {report.get('generator', '?')}",
        "",
    ]
    rows, notes = [], []
    for num, s in scenarios.items():
        lat = s["latency_ms"]
        rows.append([f"{num} {s['name']}", f"{s['requests_per_s']:.1f}", f"{lat['p50']:.1f}", f"{lat['p99']:.1f}",
                     str(s["errors"]), str(s["requests"]), f"{s['machine_busy_pct']:.0f}%"])
        notes.append(f"  {num}: {_notes(s)}")
    pgb = report.get("pgbench")
    if pgb:
        lat_avg = pgb.get("latency_avg_ms") or 0.0
        rows.append([f"pgbench TPC-B -s {pgb['scale']} (tps)", f"{pgb['tps']:.1f}", f"~{lat_avg:.1f}", "", "0",
                     str(round(pgb["tps"] * pgb["duration_s"])), f"{pgb['machine_busy_pct']:.0f}%"])
        notes.append("  pgbench: latency is pgbench's average, not a median")
    out += _table(["scenario", "req/s", "p50 ms", "p99 ms", "errors", "requests", "machine busy"], rows)
    out += notes
    if "ratio_payments_per_pgbench_tps" in report:
        out.append(f"\nscenario-1 payments/s / pgbench tps = {report['ratio_payments_per_pgbench_tps']:.3f}")
    s1 = scenarios.get("1", {})
    per = s1.get("per_payment")
    if per:
        out.append(f"commits per payment (pg_stat_database, scenario 1, webhook delivery included): "
                   f"gateway db {per['gateway_commits']:g}, bank db {per['bank_commits']:g}")
        rows_txt = ", ".join(f"{t.split('.')[-1]} " + "/".join(f"{c} {v:g}" for c, v in cols.items() if c != "hot_upd")
                             for t, cols in sorted(per["gateway_rows"].items()))
        out.append(f"rows written per payment (gateway): {rows_txt}")

    # CPU and RSS per process, one column per window
    columns = [(f"{num} {s['name'][:14]}", s["processes"]) for num, s in scenarios.items()]
    if pgb:
        columns.append(("pgbench", pgb["processes"]))
    labels: list[str] = []
    for _, procs in columns:
        labels += [k for k in procs if k not in labels]
    prow = []
    for label in labels:
        cells = [label]
        for _, procs in columns:
            p = procs.get(label)
            cells.append(f"{p['cpu_pct']:.0f}% ({p.get('sys_pct', 0):.0f} sys) / {p['rss_mb']:.0f} MB" if p else "")
        prow.append(cells)
    out += ["", "CPU (% of one core; of which in the kernel) / peak RSS per process during each measured window "
                "(postgres: largest backend):"]
    out += _table(["process", *(c[0] for c in columns)], prow)

    crow = []
    for label in labels:
        if label.startswith("postgres (rest)") or label.startswith("api supervisor"):
            continue
        cells = [label]
        for _, procs in columns[: len(scenarios)]:
            p = procs.get(label)
            cells.append(f"{p['cpu_ms_per_request']:.2f}" if p and p.get("cpu_ms_per_request") is not None else "")
        if any(cells[1:]):
            crow.append(cells)
    out += ["", "CPU ms per request (scenario 2: per request, 3 per transaction), per process:"]
    out += _table(["process", *(c[0] for c in columns[: len(scenarios)])], crow)

    rt = report.get("round_trips")
    if rt:
        out += ["", f"SQL per request, counted client-side (bench/sqlcount.py; one API process, "
                    f"{rt['requests_per_kind']} sequential requests per kind; webhook delivery included):"]
        rrows = []
        for kind, procs in rt["per_request"].items():
            cells = [kind]
            for proc in ("api", "bank", "worker"):
                c = procs.get(proc, {})
                txns = c.get("txn:BEGIN", 0) + c.get("implicit_txn", 0)
                cells += [f"{c.get('round_trips', 0):g}", f"{txns:g}"]
            rrows.append(cells)
        out += _table(["request", "api round trips", "api txns", "bank rt", "bank txns", "worker rt",
                       "worker txns"], rrows)
    prof = report.get("profile")
    if prof and prof.get("samples"):
        out += ["", f"py-spy, API processes during scenario 1 ({prof['samples']} samples, "
                    f"{prof['requests_per_s_while_profiled']:g} req/s while profiled): time by library "
                    f"(innermost frame)"]
        out += [f"  {pct:5.1f}%  {name}" for name, pct in prof["libraries"]]
        by_lib = ", ".join(f"{name} {pct:g}%" for name, pct in prof["socket_syscalls_by_library"])
        out.append(f"in socket syscalls (send/recv/read/write): {prof['socket_syscalls_pct']:g}% ({by_lib})")
        out += ["top self time:"] + [f"  {pct:5.1f}%  {name}" for name, pct in prof["self"][:15]]
        out += ["paygate functions, inclusive:"] + [f"  {pct:5.1f}%  {name}"
                                                    for name, pct in prof["paygate_inclusive"][:15]]
    for note in report.get("notes", []):
        if note.startswith("FALLBACK"):
            out.append(f"\n{note}")
    return "\n".join(out)
