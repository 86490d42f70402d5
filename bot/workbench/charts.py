"""Inline SVG charts (no library, no CDN): a horizontal bar chart and a cumulative line chart.
Every label is escaped; the output is marked safe for Jinja2."""

from __future__ import annotations

from datetime import date
from html import escape

from markupsafe import Markup

BAR_H = 22
LABEL_W = 150
CHART_W = 360


def _short(name: str, n: int = 11) -> str:
    return name if len(name) <= n else name[:3] + "…" + name[-(n - 4) :]


def bars(rows: list[tuple[str, int, int, str]]) -> Markup:
    """``(label, done, total, link)`` per bar: done/total as a filled share, with the figure."""
    if not rows:
        return Markup("")
    h = BAR_H * len(rows) + 8
    out = [
        f'<svg class="chart bars" viewBox="0 0 {CHART_W} {h}" width="100%" '
        f'role="img" aria-label="各下级工会完成率">'
    ]
    avail = CHART_W - LABEL_W - 70
    for i, (label, done, total, link) in enumerate(rows):
        y = 4 + i * BAR_H
        share = done / total if total else 0.0
        w = max(0.0, min(1.0, share)) * avail
        out.append(
            f'<a href="{escape(link)}"><g class="bar" data-done="{done}" data-total="{total}">'
            f"<title>{escape(label)}：{done}/{total}</title>"
            f'<text x="0" y="{y + 15}" class="lbl">{escape(_short(label))}</text>'
            f'<rect x="{LABEL_W}" y="{y + 3}" width="{avail}" height="14" class="bg"/>'
            f'<rect x="{LABEL_W}" y="{y + 3}" width="{w:.1f}" height="14" class="fg"/>'
            f'<text x="{LABEL_W + avail + 4}" y="{y + 15}" class="num">'
            f"{share * 100:.0f}% {done}/{total}</text></g></a>"
        )
    out.append("</svg>")
    return Markup("".join(out))


def line(daily: list[tuple[date, int, int]], total: int) -> Markup:
    """Cumulative submitted and completed units per day, against ``total`` (the y axis)."""
    w, h, left, bottom = CHART_W, 170, 36, 22
    if not daily:
        return Markup('<p class="muted">暂无提交或完成记录</p>')
    first, last = daily[0][0], daily[-1][0]
    span = max(1, (last - first).days)
    top = max(1, total)

    def xy(d: date, v: int) -> str:
        x = left + (d - first).days / span * (w - left - 8)
        y = 8 + (1 - v / top) * (h - bottom - 8)
        return f"{x:.1f},{y:.1f}"

    sub = done = 0
    pts_s, pts_d = [], []
    for d, s, c in daily:
        sub += s
        done += c
        pts_s.append(xy(d, sub))
        pts_d.append(xy(d, done))
    dots = "".join(
        f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" class="{c}"/>'
        for pts, c in ((pts_s, "ds"), (pts_d, "dd"))
        for p in pts
    )
    base = h - bottom
    return Markup(
        f'<svg class="chart line" viewBox="0 0 {w} {h}" width="100%" role="img" '
        f'aria-label="每日进度">'
        f'<line x1="{left}" y1="{base}" x2="{w - 4}" y2="{base}" class="axis"/>'
        f'<line x1="{left}" y1="8" x2="{left}" y2="{base}" class="axis"/>'
        f'<text x="0" y="14" class="num">{top}</text><text x="0" y="{base}" class="num">0</text>'
        f'<text x="{left}" y="{h - 4}" class="num">{first.strftime("%m-%d")}</text>'
        f'<text x="{w - 40}" y="{h - 4}" class="num">{last.strftime("%m-%d")}</text>'
        f'<polyline points="{" ".join(pts_s)}" class="ls" data-last="{sub}"/>'
        f'<polyline points="{" ".join(pts_d)}" class="ld" data-last="{done}"/>'
        f"{dots}</svg>"
    )
