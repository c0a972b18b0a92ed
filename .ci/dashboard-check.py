#!/usr/bin/env python3
"""Checks the Grafana dashboard that the chart ships (chart/dashboards/edgefault.json), with Python's
standard library only:

  - it parses as JSON and has what Grafana needs to import it (title, uid, schemaVersion, panels);
  - every panel, rows' nested panels included, has a unique id, a title and a gridPos; every panel but a
    row has at least one target with a PromQL `expr`, and queries the templated data source
    (`${datasource}`); the variables `datasource`, `namespace` and `pod` exist;
  - every metric a query names (panels' exprs and the variables' label_values queries) is a metric of
    docs/observability.md's table; `NAME_bucket`, `NAME_sum` and `NAME_count` are those of the histogram
    NAME there, and a histogram is never queried by its bare name (it has no such series);
  - the docs copy (docs/grafana/edgefault-dashboard.json, a symlink into the chart) has the same bytes.

A problem is printed with the panel's title and the metric; the exit status is 1 when there is any.

  python3 .ci/dashboard-check.py [--dashboard FILE] [--docs FILE] [--copy FILE]
  python3 .ci/dashboard-check.py --list-metrics   # NAME<TAB>TYPE<TAB>FAMILY for each metric queried

FAMILY is the name in the exposition's `# TYPE` line: a counter's without `_total` (OpenMetrics).
tests/it/clients.rs uses --list-metrics to check that a running server exports every one of them.
"""
import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# PromQL's functions and aggregation operators (followed by "("), and Grafana's variable-query functions.
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "avg",
    "avg_over_time", "bottomk", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count",
    "count_over_time", "count_values", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "exp", "floor", "group", "histogram_avg", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters", "hour",
    "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "limitk", "limit_ratio",
    "ln", "log10", "log2", "mad_over_time", "max", "max_over_time", "min", "min_over_time", "minute", "month",
    "pi", "predict_linear", "present_over_time", "quantile", "quantile_over_time", "rad", "rate", "resets",
    "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc",
    "sqrt", "start", "end", "stddev", "stddev_over_time", "stdvar", "stdvar_over_time", "sum",
    "sum_over_time", "tan", "tanh", "time", "timestamp", "topk", "vector", "year",
    # Grafana's templating functions.
    "label_values", "label_names", "metrics", "query_result",
}
# Words of PromQL that are neither metrics nor functions.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "inf", "nan", "atan2"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

TOKEN = re.compile(
    r"(?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)"
    r"|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)"
    r"|(?P<other>\S)"
)


def strip_expr(expr):
    """The expression without what can never name a metric: strings, Grafana variables, label matchers,
    ranges and subqueries, and the label lists of by/without/on/ignoring/group_left/group_right."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]", " ", s)
    while True:
        t = re.sub(r"\{[^{}]*\}", " ", s)
        t = re.sub(r"\[[^\[\]]*\]", " ", t)
        if t == s:
            break
        s = t
    return re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", s)


def metric_names(expr):
    """(metric names, unknown function names) that a PromQL expression (or a Grafana variable query)
    uses."""
    # label_values(SELECTOR, LABEL) and label_values(LABEL): the label is not a metric.
    expr = re.sub(r"^\s*label_values\s*\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", "", expr)
    expr = re.sub(r"\blabel_values\s*\(\s*(.*?)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", r"label_values(\1)", expr)
    tokens = [(m.lastgroup, m.group()) for m in TOKEN.finditer(strip_expr(expr))]
    names, unknown = [], []
    for i, (kind, text) in enumerate(tokens):
        if kind != "ident":
            continue
        called = i + 1 < len(tokens) and tokens[i + 1][1] == "("
        if called:
            if text not in FUNCTIONS:
                unknown.append(text)
        elif text.lower() not in KEYWORDS:
            names.append(text)
    return names, unknown


def self_test():
    """The extractor on expressions whose answer is known: checked at every run, so a change to it that
    breaks one fails CI here rather than letting a metric slip through."""
    cases = {
        'sum by (route, outcome) (rate(m_total{a="x", b=~"$v"}[$__rate_interval]))': ["m_total"],
        "histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))": ["h_bucket"],
        "sum(rate(a_total[1m])) by (le) / ignoring(x) group_left(y) b > bool 1e3": ["a_total", "b"],
        "rate(x_sum[5m]) / rate(x_count[5m]) offset 1h": ["x_sum", "x_count"],
        'label_values(m_total{namespace=~"$namespace"}, pod)': ["m_total"],
        "label_values(namespace)": [],
        "topk(5, max_over_time(g[1h:5m])) and on(pod) up": ["g", "up"],
    }
    for expr, want in cases.items():
        got, unknown = metric_names(expr)
        assert got == want and not unknown, f"dashboard-check self-test: {expr!r} gave {got} {unknown}, want {want}"
    assert metric_names("rates(m[1m])")[1] == ["rates"], "an unknown function is reported"


def documented_metrics(docs):
    """name -> type of every row of the metrics table of docs/observability.md."""
    rows = re.findall(r"^\| `(edgefault_[a-z0-9_]+)` \| (counter|gauge|histogram) \|", docs.read_text(), re.M)
    return dict(rows)


def resolve(name, documented):
    """(documented name, type) for a name a query uses, or None."""
    if name in documented:
        return name, documented[name]
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and documented.get(base) == "histogram":
            return base, "histogram"
    return None


def shown(path):
    try:
        return str(path.resolve().relative_to(ROOT)) if not path.is_symlink() else str(path.absolute().relative_to(ROOT))
    except ValueError:
        return str(path)


def family(name, kind):
    return name[: -len("_total")] if kind == "counter" and name.endswith("_total") else name


def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels") or [])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dashboard", type=pathlib.Path, default=ROOT / "chart/dashboards/edgefault.json")
    ap.add_argument("--docs", type=pathlib.Path, default=ROOT / "docs/observability.md")
    ap.add_argument("--copy", type=pathlib.Path, default=ROOT / "docs/grafana/edgefault-dashboard.json",
                    help="the docs copy that must equal --dashboard; 'none' skips that check")
    ap.add_argument("--list-metrics", action="store_true")
    a = ap.parse_args()
    self_test()

    problems = []
    try:
        dashboard = json.loads(a.dashboard.read_text())
    except (OSError, ValueError) as e:
        print(f"dashboard-check: {a.dashboard}: {e}")
        return 1
    documented = documented_metrics(a.docs)
    if len(documented) < 10:
        problems.append(f"{a.docs}: found only {len(documented)} metrics in its table (| `edgefault_…` | type |)")
    for key in ("title", "uid", "schemaVersion", "panels", "templating"):
        if key not in dashboard:
            problems.append(f"the dashboard has no {key!r}")

    queried = {}  # documented name -> type
    where = []  # (place, expr)
    ids = set()
    panels = list(walk(dashboard.get("panels") or []))
    for p in panels:
        title = p.get("title") or f"panel id {p.get('id')}"
        place = f"panel {title!r}"
        if not p.get("title"):
            problems.append(f"{place}: no title")
        if p.get("id") in ids or not isinstance(p.get("id"), int):
            problems.append(f"{place}: id {p.get('id')!r} missing or not unique")
        ids.add(p.get("id"))
        if not all(k in (p.get("gridPos") or {}) for k in ("x", "y", "w", "h")):
            problems.append(f"{place}: no gridPos x, y, w, h")
        if p.get("type") == "row":
            if p.get("targets"):
                problems.append(f"{place}: a row with queries")
            continue
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{place}: no query")
        for t in targets:
            ds = (t.get("datasource") or p.get("datasource") or {}).get("uid")
            if ds != "${datasource}":
                problems.append(f"{place}: query {t.get('refId')} uses data source {ds!r}, not the templated ${{datasource}}")
            if not (t.get("expr") or "").strip():
                problems.append(f"{place}: query {t.get('refId')} has no expr")
                continue
            where.append((f"{place} query {t.get('refId')}", t["expr"]))
    variables = {v.get("name"): v for v in (dashboard.get("templating") or {}).get("list", [])}
    for name in ("datasource", "namespace", "pod"):
        if name not in variables:
            problems.append(f"templating: no variable {name!r}")
    if variables.get("datasource", {}).get("query") != "prometheus":
        problems.append("templating: the datasource variable must be of the prometheus type")
    for name, v in variables.items():
        if v.get("type") == "query":
            q = v.get("query")
            where.append((f"variable {name!r}", q.get("query") if isinstance(q, dict) else q))

    for place, expr in where:
        names, unknown = metric_names(expr or "")
        for fn in unknown:
            problems.append(f"{place}: {fn}() is not a PromQL function")
        if not names:
            problems.append(f"{place}: names no metric: {expr}")
        for name in names:
            found = resolve(name, documented)
            if found is None:
                problems.append(f"{place}: metric {name} is not in {a.docs.name}")
            elif found[1] == "histogram" and name == found[0]:
                problems.append(f"{place}: histogram {name} has no series of that name; query {name}_bucket, _sum or _count")
            else:
                queried[found[0]] = found[1]

    if str(a.copy) != "none":
        if not a.copy.exists():
            problems.append(f"{a.copy}: missing (the docs copy of {a.dashboard})")
        elif a.copy.read_bytes() != a.dashboard.read_bytes():
            problems.append(f"{a.copy} differs from {a.dashboard}: it must be the same file")

    if problems:
        for problem in problems:
            print(f"dashboard-check: {problem}")
        return 1
    if a.list_metrics:
        for name, kind in sorted(queried.items()):
            print(f"{name}\t{kind}\t{family(name, kind)}")
        return 0
    copy = f"{shown(a.copy)} is the same file" if str(a.copy) != "none" else "no copy checked"
    print(f"dashboard-check: {shown(a.dashboard)}: {len(panels)} panels, {len(where)} queries, {len(queried)} metrics, "
          f"every one in {shown(a.docs)}; {copy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
