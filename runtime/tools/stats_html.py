"""`dmd stats --html`: the lake health report as one self-contained page (inline SVG charts and
CSS, no script, nothing fetched). Every number cell carries `data-*` attributes naming what it
counts, so tests can read the rendered page back and compare it with the lake."""

from __future__ import annotations

from html import escape

from .stats import LakeStats, age, size

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .6em;border-bottom:1px solid #ddd}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{text-align:left;background:#f4f4f4}
svg{display:block;margin:.5em 0}.bar{fill:#4a7bb7}.err{fill:#c0504d}.axis{stroke:#888}
svg text{font-size:11px;fill:#333}
"""


def bar_chart(title: str, labels: list[str], values: list[int], css_class: str = "bar") -> str:
    """Vertical bars, one per label (a day), with the largest value on the axis."""
    width, height, left, bottom, top = 900, 220, 50, 40, 20
    top_value = max(values, default=0) or 1
    step = (width - left - 10) / max(len(values), 1)
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = (height - bottom - top) * value / top_value
        x = left + i * step
        bars.append(
            f'<rect class="{css_class}" x="{x + step * 0.1:.1f}" y="{height - bottom - h:.1f}" '
            f'width="{step * 0.8:.1f}" height="{h:.1f}"><title>{escape(label)}: {value:,}</title></rect>'
        )
    every = max(1, len(labels) // 12)  # at most ~12 axis labels
    ticks = [
        f'<text x="{left + i * step + step / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle">'
        f"{escape(label)}</text>"
        for i, label in enumerate(labels)
        if i % every == 0
    ]
    return (
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<text x="{left}" y="14" font-weight="bold">{escape(title)}</text>'
        f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}"/>'
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}"/>'
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{top_value:,}</text>'
        f'<text x="{left - 4}" y="{height - bottom}" text-anchor="end">0</text>' + "".join(bars + ticks) + "</svg>"
    )


def hbar_chart(title: str, labels: list[str], values: list[int]) -> str:
    """Horizontal bars, one per label (an error cause), labels beside them."""
    row, width, left, top = 22, 900, 360, 24
    height = top + row * max(len(values), 1) + 10
    top_value = max(values, default=0) or 1
    parts = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row
        w = (width - left - 80) * value / top_value
        shown = label if len(label) <= 55 else label[:54] + "…"
        parts.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(shown)}<title>{escape(label)}</title></text>'
            f'<rect class="err" x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 6}"/>'
            f'<text x="{left + w + 4:.1f}" y="{y + 14}">{value:,}</text>'
        )
    return (
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<text x="0" y="14" font-weight="bold">{escape(title)}</text>' + "".join(parts) + "</svg>"
    )


def _cell(value: int | float | str, **data: str) -> str:
    attrs = "".join(f' data-{k.replace("_", "-")}="{escape(v)}"' for k, v in data.items())
    if isinstance(value, float):
        raw, shown = f"{value:.1f}", f"{value:,.1f}"
    else:
        raw, shown = str(value), f"{value:,}" if isinstance(value, int) else str(value)
    return f'<td class="n"{attrs} data-value="{escape(raw)}">{escape(shown)}</td>'


def render(stats: LakeStats) -> str:
    now = stats.now
    per_day = stats.by_day()
    labels = [d.isoformat() for d, _, _ in per_day]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>dmd stats: {escape(stats.location)}</title><style>{CSS}</style></head><body>",
        f"<h1>Lake health: {escape(stats.location)}</h1>",
        f"<p>Report time {escape(now.isoformat(timespec='seconds'))}. Freshness: newest object arrived "
        f'<span id="freshness">{escape(age(now, stats.newest_arrival))}</span> ago.</p>',
        "<h2>Objects and rows per day</h2>",
        bar_chart("Objects per partition day (all types)", labels, [o for _, _, o in per_day]),
        bar_chart("Rows per partition day (all types)", labels, [r for _, r, _ in per_day]),
        "<h2>Record types</h2><table id=types><tr><th>type<th>days<th>rows<th>objects<th>bytes<th>rows/object"
        "<th>first day<th>last day<th>newest object</tr>",
    ]
    for t in stats.by_type():
        parts.append(
            f"<tr><th>{escape(t.type_name)}"
            + _cell(t.days, type=t.type_name, metric="days")
            + _cell(t.rows, type=t.type_name, metric="rows")
            + _cell(t.objects, type=t.type_name, metric="objects")
            + f'<td class="n" data-type="{escape(t.type_name)}" data-metric="bytes" data-value="{t.bytes}">'
            f"{escape(size(t.bytes))}</td>"
            + _cell(t.rows_per_object, type=t.type_name, metric="rows-per-object")
            + f"<td>{t.first_day}<td>{t.last_day}<td>{escape(age(now, t.newest_arrival))} ago</tr>"
        )
    parts.append("</table>")
    parts.append(
        f"<h2>Error documents</h2><p><span id=error-documents data-value={stats.error_documents}>"
        f"{stats.error_documents:,}</span> not replayed (<span id=error-records data-value={stats.error_records}>"
        f"{stats.error_records:,}</span> records), <span id=replayed data-value={stats.replayed_documents}>"
        f"{stats.replayed_documents:,}</span> replayed."
    )
    if stats.oldest_unreplayed:
        key, when = stats.oldest_unreplayed
        parts.append(
            f' Oldest not replayed: <code id=oldest-unreplayed data-value="{escape(key)}">{escape(key)}</code> '
            f"({escape(age(now, when))} old)."
        )
    parts.append("</p>")
    if stats.causes:
        parts.append(
            hbar_chart("Error records by cause", [c.cause for c in stats.causes], [c.records for c in stats.causes])
        )
        parts.append("<table id=causes><tr><th>cause<th>documents<th>records<th>oldest</tr>")
        for c in stats.causes:
            parts.append(
                f"<tr><td>{escape(c.cause)}"
                + _cell(c.documents, cause=c.cause, metric="documents")
                + _cell(c.records, cause=c.cause, metric="records")
                + f"<td>{escape(c.oldest.isoformat() if c.oldest else '-')}</tr>"
            )
        parts.append("</table>")
    parts.append("<h2>Per type and partition day</h2><table id=days>")
    parts.append("<tr><th>type<th>day<th>rows<th>objects<th>bytes<th>rows/object</tr>")
    for d in stats.days:
        key = {"type": d.type_name, "day": d.day.isoformat()}
        parts.append(
            f"<tr><td>{escape(d.type_name)}<td>{d.day}"
            + _cell(d.rows, **key, metric="rows")
            + _cell(d.objects, **key, metric="objects")
            + f'<td class="n" data-type="{escape(d.type_name)}" data-day="{d.day}" data-metric="bytes" '
            f'data-value="{d.bytes}">{escape(size(d.bytes))}</td>'
            + _cell(d.rows_per_object, **key, metric="rows-per-object")
            + "</tr>"
        )
    parts.append("</table>")
    if stats.unreadable:
        parts.append(f"<p><b>Unreadable objects: {len(stats.unreadable)}</b>, e.g. {escape(stats.unreadable[0])}</p>")
    parts.append("</body></html>\n")
    return "".join(parts)
