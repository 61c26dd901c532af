"""face_dataset: class balance, a contact sheet of accepted crops per label and split, and
rejects by reason with sample thumbnails."""
import os
from typing import Dict, List, Tuple

from pipelines.report import charts, rasters
from pipelines.report import html as h
from pipelines.report import thumbnails
from pipelines.report.sources import JobTables

TITLE = 'Face dataset'
TABLES = ('faces', 'rejects')  # what the SQL below reads
CROPS_PER_ROW = 8
SAMPLES_PER_REASON = 4
SPLITS = ('training', 'validate')


def caption(path: str, width: int = 18) -> str:
  name = os.path.basename(path or '')
  return name if len(name) <= width else name[:width - 1] + '…'


def balance_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Class balance')]
  rows = t.rows('SELECT label, split, count(*) AS n FROM faces GROUP BY ALL ORDER BY ALL')
  if not rows:
    return out + [h.no_rows('faces')]
  labels = sorted({r['label'] for r in rows})
  splits = [s for s in SPLITS if any(r['split'] == s for r in rows)]
  splits += sorted({r['split'] for r in rows} - set(splits))
  counts = {(r['label'], r['split']): r['n'] for r in rows}
  path, src = files.path('balance')
  charts.stacked_bars(path, 'Accepted faces per label and split', labels,
                      {s: [counts.get((label, s), 0) for label in labels] for s in splits},
                      'label', 'faces')
  out.append(h.figure(src, 'Accepted faces per label, stacked by split'))
  out.append(h.table(['label'] + splits + ['total'],
                     [[label] + [counts.get((label, s), 0) for s in splits]
                      + [sum(counts.get((label, s), 0) for s in splits)] for label in labels]
                     + [['total'] + [sum(counts.get((label, s), 0) for label in labels)
                                     for s in splits] + [sum(counts.values())]]))
  return out


def contact_sheet_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Contact sheet: accepted crops per label and split')]
  rows = t.rows('SELECT label, split, image_id, output_path FROM faces ORDER BY label, split, '
                'output_path')
  if not rows:
    return out + [h.no_rows('faces')]
  groups: Dict[Tuple[str, str], List] = {}
  missing = 0
  for r in rows:
    group = groups.setdefault((r['label'], r['split']), [])
    local = thumbnails.resolve(r['output_path'], t.files_dir)
    pixels = thumbnails.load(local) if local else None
    if pixels is None:
      missing += 1
    elif len(group) < CROPS_PER_ROW:
      group.append((pixels, caption(r['output_path'])))
  totals = {}
  for r in rows:
    totals[(r['label'], r['split'])] = totals.get((r['label'], r['split']), 0) + 1
  sheet = [('%s\n%s\n%d of %d' % (label, split, len(images), totals[(label, split)]), images)
           for (label, split), images in groups.items() if images]
  if missing:
    out.append(h.note('%d of %d crops could not be shown: not on this machine (e.g. gs:// or '
                      'another host) or not decodable.' % (missing, len(rows))))
  if not sheet:
    return out
  path, src = files.path('contact_sheet')
  rasters.image_grid(path, 'Accepted face crops (up to %d per label and split)' % CROPS_PER_ROW,
                    sheet, ncols=CROPS_PER_ROW)
  out.append(h.figure(src, 'Contact sheet of accepted face crops per label and split'))
  return out


def rejects_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Rejects by reason')]
  reasons = t.rows('SELECT reason, count(*) AS n FROM rejects GROUP BY 1 ORDER BY n DESC, 1')
  if not reasons:
    return out + [h.no_rows('rejects')]
  path, src = files.path('rejects')
  charts.bars(path, 'Rejected images by reason', [r['reason'] for r in reasons],
              [r['n'] for r in reasons], 'images', '', annotations=[str(r['n']) for r in reasons],
              horizontal=True, colour=charts.PALETTE[3])
  out.append(h.figure(src, 'Rejected images per reason'))
  out.append(h.table(['reason', 'images'], [(r['reason'], r['n']) for r in reasons]))
  samples = t.rows('SELECT reason, image_id, source, label, detail, duplicate_of FROM '
                   '(SELECT *, row_number() OVER (PARTITION BY reason ORDER BY image_id) AS k '
                   'FROM rejects) WHERE k <= ? ORDER BY reason, image_id', [SAMPLES_PER_REASON])
  sheet: Dict[str, list] = {}
  shown = 0
  for r in samples:
    local = thumbnails.resolve(r['source'], None)
    pixels = thumbnails.load(local) if local else None
    if pixels is not None:
      sheet.setdefault(r['reason'], []).append((pixels, caption(r['source'])))
      shown += 1
  if sheet:
    path, src = files.path('reject_samples')
    rasters.image_grid(path, 'Sample rejected images per reason', list(sheet.items()),
                      ncols=SAMPLES_PER_REASON)
    out.append(h.figure(src, 'Sample rejected source images per reason'))
  if shown < len(samples):
    out.append(h.note('%d of %d sample images could not be shown: not on this machine or not '
                      'decodable.' % (len(samples) - shown, len(samples))))
  out.append(h.table(['reason', 'image', 'label', 'detail', 'duplicate of'],
                     [(r['reason'], r['image_id'], r['label'], r['detail'], r['duplicate_of'])
                      for r in samples],
                     caption='Sample rejects (up to %d per reason)' % SAMPLES_PER_REASON))
  return out


def sections(t: JobTables, files: charts.ChartFiles) -> List[str]:
  return balance_section(t, files) + contact_sheet_section(t, files) + rejects_section(t, files)
