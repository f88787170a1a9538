"""The due list as one self-contained HTML page that prints well (issue 6.3).

No external assets: the style sheet is inline, there are no scripts, fonts or
images.  Print CSS sets the page size (A4 or Letter), repeats table headings on
every page, keeps a row on one page and hides nothing.  Every text goes through
``html.escape``.  Rows carry ``data-`` attributes with the item's stable fields so
the page can be checked against the JSON of the same list.
"""

from __future__ import annotations

import html
import io
from typing import TextIO

from devicelog.reports.due import foot_lines, subtitle, title, when_text, why_text
from devicelog.reports.due_pdf import Group, groups
from devicelog.store.due import DueList

CSS = """
:root { color-scheme: light; }
body { font: 11pt/1.35 "DejaVu Sans", "Segoe UI", Arial, sans-serif; margin: 1.5em; color: #111; }
h1 { font-size: 15pt; margin: 0 0 .2em; }
p.sub { margin: 0 0 1em; color: #333; }
h2 { font-size: 12pt; margin: 1.2em 0 .3em; break-after: avoid; }
table { border-collapse: collapse; width: 100%; font-size: 9.5pt; }
th, td { border: 1px solid #999; padding: .25em .4em; text-align: left; vertical-align: top; }
th { background: #e6e6e6; }
tr { break-inside: avoid; }
td.due small, td.who small, td.dev small { display: block; color: #333; }
tr.overdue td.due { color: #a00; font-weight: bold; }
td.what { font-weight: bold; }
p.empty { font-size: 13pt; font-weight: bold; margin: 2em 0; }
footer p { margin: .3em 0; }
footer p.suppressed { font-weight: bold; }
.redacted { color: #a00; font-weight: bold; }
@media print {
  body { margin: 0; font-size: 9.5pt; }
  thead { display: table-header-group; }
  a { color: inherit; text-decoration: none; }
}
"""


def render_html(dl: DueList, *, page_size: str = "A4", group: Group = "week") -> str:
    """The whole page as one string (for a short list; a file goes through :func:`write_html`)."""
    buf = io.StringIO()
    write_html(dl, buf, page_size=page_size, group=group)
    return buf.getvalue()


def write_html(dl: DueList, fh: TextIO, *, page_size: str = "A4", group: Group = "week", rows_per_chunk: int = 1000) -> None:
    """The page written to ``fh`` as it is made, ``rows_per_chunk`` rows at a time: a
    57,000-item page is ~36 MB of text, held twice over (pieces and joined string) by
    a caller that builds it whole."""
    e = html.escape
    size = "letter" if page_size.lower() == "letter" else "A4"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title(dl))} {e(dl.as_of.isoformat())}</title>",
        f"<style>{CSS}@page {{ size: {size} portrait; margin: 12mm; }}</style>",
        "</head><body>",
        f"<header><h1>{e(title(dl))}</h1>",
        f'<p class="sub">{e(subtitle(dl))}</p></header>',
        "<main>",
    ]
    if dl.redacted:
        out.append('<p class="redacted">Redacted copy: initials and the last 4 characters of the MRN; no drug names.</p>')
    if not dl.entries:
        out.append(f'<p class="empty">{e(dl.empty_text())}</p>')
    def flush() -> None:
        fh.write("\n".join(out) + "\n")
        out.clear()

    for heading, entries in groups(dl.entries, group):
        if len(out) >= rows_per_chunk:
            flush()
        out.append(f"<section><h2>{e(heading)} ({len(entries)})</h2>")
        out.append(
            "<table><thead><tr><th>Due</th><th>Latest safe</th><th>Patient</th><th>Device</th>"
            "<th>What</th><th>Why</th></tr></thead><tbody>"
        )
        for entry in entries:
            if len(out) >= rows_per_chunk:
                flush()
            i = entry.item
            out.append(
                f'<tr class="{e(entry.status)}" data-item-key="{e(i.key)}" data-status="{e(entry.ack.word if entry.ack else entry.status)}"'
                f' data-due-on="{i.due_on.isoformat()}" data-code="{e(i.code)}">'
                f'<td class="due">{i.due_on.isoformat()}<small>{e(when_text(entry, dl.as_of))}</small></td>'
                f'<td class="safe">{i.latest_safe_on.isoformat() if i.latest_safe_on else "—"}</td>'
                f'<td class="who">{e(i.patient_name)}<small>{e(i.patient_mrn)}</small></td>'
                f'<td class="dev">{e(i.device_model)}<small>SN {e(i.device_serial)}</small></td>'
                f'<td class="what">{e(i.what)}</td>'
                f'<td class="why">{e(why_text(entry))}</td></tr>'
            )
        out.append("</tbody></table></section>")
    out.append("</main><footer>")
    suppressed_line = dl.suppressed_text()
    for line in foot_lines(dl):
        cls = ' class="suppressed"' if line == suppressed_line else ""
        out.append(f"<p{cls}>{e(line)}</p>")
    out.append("</footer></body></html>")
    flush()
