"""One self-contained HTML page: tables inline, every image embedded as a ``data:`` URI.

The page references no external file, stylesheet, script or URL, so it can be mailed or
opened from any directory.
"""

from __future__ import annotations

import base64
import html
from typing import Sequence

from lssed.report.plots import Figure
from lssed.report.tables import Table, display

_STYLE = """
body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em 0;font-size:13px}
th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}
.protocol{font-size:12px;color:#555;font-style:italic}
.missing{background:#fff4e5;border:1px solid #f0b400;padding:.5em 1em}
figure{display:inline-block;margin:.5em}figcaption{font-size:12px;color:#555}
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def table_html(table: Table) -> str:
    headers, rows = display(table)
    e = html.escape
    parts = [f"<h2>{e(table.title)}</h2>"]
    if table.protocol:
        parts.append(f'<p class="protocol">Protocol: {e(table.protocol)}</p>')
    if rows:
        parts.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr></thead><tbody>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</tbody></table>")
    else:
        parts.append("<p><em>no data</em></p>")
    if table.notes:
        parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in table.notes) + "</ul>")
    return "\n".join(parts)


def figure_html(fig: Figure) -> str:
    uri = data_uri(fig.path.read_bytes())
    e = html.escape
    return f'<figure><img alt="{e(fig.title)}" src="{uri}"><figcaption>{e(fig.title)}</figcaption></figure>'


def render_page(title: str, intro: str, sections: Sequence[tuple[str, Sequence[Table], Sequence[Figure]]],
                missing: Sequence[str]) -> str:
    """``sections``: (heading, tables, figures). ``missing`` is shown first when not empty."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{e(title)}</h1>", f"<p>{e(intro)}</p>"]
    if missing:
        parts.append('<div class="missing"><strong>Missing or incomplete:</strong><ul>'
                     + "".join(f"<li>{e(m)}</li>" for m in missing) + "</ul></div>")
    for heading, tables, figures in sections:
        parts.append(f"<section><h1>{e(heading)}</h1>")
        parts += [table_html(t) for t in tables]
        parts += [figure_html(f) for f in figures]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
