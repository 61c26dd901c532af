"""HTML pieces of the report: escaped cells, tables, figures, notes, and the page itself.

Values are printed the same way everywhere (tests read them back): integers as is, floats
rounded to 4 decimals, ratios as percentages with one decimal, times as UTC.
"""
import datetime
import html
from typing import Any, Iterable, List, Optional, Sequence

NO_VALUE = '—'

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1d1d1f; margin: 0; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 40px 0 8px; padding-top: 12px; border-top: 2px solid #dde1e6; }
h3 { font-size: 16px; margin: 26px 0 6px; }
nav ul { columns: 2; margin: 8px 0; }
.meta, .note { color: #555; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 6px 10px; margin: 8px 0; }
.skipped { background: #f1f3f5; border-left-color: #98a2ad; }
.norows { color: #8a5a00; font-style: italic; margin: 8px 0; }
figure { margin: 10px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e6ea; }
figcaption { color: #555; font-size: 12px; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { border: 1px solid #dde1e6; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f1f3f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: #555; padding: 2px 0; font-size: 12px; }
details { margin: 4px 0 14px; }
summary { cursor: pointer; color: #0b57d0; }
.scroll { overflow-x: auto; max-width: 100%; }
table.heat td { padding: 2px 4px; font-size: 11px; min-width: 20px; }
table.heat th { font-size: 11px; padding: 2px 4px; white-space: nowrap; }
table.heat th.time { writing-mode: vertical-rl; transform: rotate(180deg); }
pre.payload { white-space: pre-wrap; word-break: break-all; margin: 0; font-size: 12px; }
"""


def fmt(value: Any) -> str:
  """A value as the report prints it."""
  if value is None:
    return NO_VALUE
  if isinstance(value, bool):
    return 'true' if value else 'false'
  if isinstance(value, int):
    return str(value)
  if isinstance(value, float):
    if value != value:  # NaN
      return NO_VALUE
    rounded = round(value, 4)
    return str(int(rounded)) + '.0' if rounded.is_integer() else repr(rounded)
  if isinstance(value, datetime.datetime):
    return fmt_time(value)
  return str(value)


def fmt_time(moment: Optional[datetime.datetime]) -> str:
  if moment is None:
    return NO_VALUE
  text = moment.strftime('%Y-%m-%d %H:%M:%S')
  if moment.microsecond:
    text += ('.%06d' % moment.microsecond).rstrip('0')
  return text


def pct(part: Optional[float], whole: Optional[float]) -> str:
  """part / whole as a percentage with one decimal ('50.0%'), or — when whole is 0."""
  if part is None or not whole:
    return NO_VALUE
  return '%.1f%%' % (100.0 * part / whole)


def ratio_pct(ratio: Optional[float]) -> str:
  return NO_VALUE if ratio is None else '%.1f%%' % (100.0 * ratio)


def esc(text: Any) -> str:
  return html.escape(str(text), quote=True)


class Raw(str):
  """Already-escaped HTML for a table cell."""


def _cell(value: Any) -> str:
  if isinstance(value, Raw):
    return '<td>%s</td>' % value
  numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
  return '<td%s>%s</td>' % (' class="num"' if numeric else '', esc(fmt(value)))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = '',
          css_class: str = '') -> str:
  """An HTML table; each cell printed with fmt() (Raw cells as given)."""
  head = ''.join('<th>%s</th>' % esc(h) for h in headers)
  body = ''.join('<tr>%s</tr>' % ''.join(_cell(v) for v in row) for row in rows)
  return '<div class="scroll"><table%s>%s<thead><tr>%s</tr></thead><tbody>%s</tbody>' \
         '</table></div>' % (
             ' class="%s"' % css_class if css_class else '',
             '<caption>%s</caption>' % esc(caption) if caption else '', head, body)


def figure(src: str, alt: str, caption: str = '') -> str:
  return '<figure><img src="%s" alt="%s">%s</figure>' % (
      esc(src), esc(alt), '<figcaption>%s</figcaption>' % esc(caption) if caption else '')


def heading(text: str, level: int = 3, anchor: str = '') -> str:
  return '<h%d%s>%s</h%d>' % (level, ' id="%s"' % esc(anchor) if anchor else '', esc(text),
                             level)


def para(text: str) -> str:
  return '<p>%s</p>' % esc(text)


def note(text: str, css_class: str = 'note') -> str:
  return '<p class="%s">%s</p>' % (css_class, esc(text))


def no_rows(what: str) -> str:
  """Said instead of a chart when there is nothing to draw."""
  return '<p class="norows">%s: no rows</p>' % esc(what)


def details(summary: str, content: str) -> str:
  return '<details><summary>%s</summary>%s</details>' % (esc(summary), content)


def long_table(headers: Sequence[str], rows: List[Sequence[Any]], caption: str = '',
               shown: int = 15) -> str:
  """A table, folded away behind its row count when longer than `shown` rows."""
  text = table(headers, rows, caption)
  return text if len(rows) <= shown else details('Table (%d rows)' % len(rows), text)


def page(title: str, meta: List[str], toc: List[Sequence[str]], body: List[str]) -> str:
  """The whole document: inline CSS, no scripts, nothing fetched from elsewhere."""
  nav = ''.join('<li><a href="#%s">%s</a></li>' % (esc(anchor), esc(text))
                for anchor, text in toc)
  return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
          '<meta name="viewport" content="width=device-width, initial-scale=1">'
          '<title>%s</title><style>%s</style></head><body><main>'
          '<h1>%s</h1>%s<nav><ul>%s</ul></nav>%s</main></body></html>\n' % (
              esc(title), CSS, esc(title),
              ''.join('<p class="meta">%s</p>' % esc(m) for m in meta), nav, '\n'.join(body)))
