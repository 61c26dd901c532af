"""image_inference: accuracy, per-label precision and recall, the confusion matrix, and the
least confident predictions."""
import os
from typing import Dict, List, Tuple

from pipelines.report import charts
from pipelines.report import html as h
from pipelines.report.sources import JobTables

TITLE = 'Image inference'
TABLES = ('evaluation', 'confusion', 'predictions')  # what the SQL below reads
LEAST_CONFIDENT = 5


def confusion_labels(cells: Dict[Tuple[str, str], int]) -> List[str]:
  return sorted({t for t, _ in cells} | {p for _, p in cells})


def accuracy(cells: Dict[Tuple[str, str], int]) -> Tuple[int, int]:
  """(right, images) from confusion cells."""
  return (sum(n for (t, p), n in cells.items() if t == p), sum(cells.values()))


def evaluation_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Accuracy, precision and recall')]
  cells = {(r['true_label'], r['predicted_label']): int(r['n']) for r in t.rows(
      'SELECT true_label, predicted_label, sum(count) AS n FROM confusion GROUP BY ALL')}
  rows = t.rows('SELECT label, precision, recall, support, predicted, images, accuracy '
                'FROM evaluation ORDER BY label')
  if not rows and not cells:
    return out + [h.no_rows('evaluation (no predictions had a true label)')]
  right, images = accuracy(cells)
  if images:
    out.append(h.para('Accuracy: %s (%d of %d images with a true label predicted right).'
                      % (h.pct(right, images), right, images)))
  if rows:
    path, src = files.path('precision_recall')
    charts.grouped_bars(path, 'Precision and recall per label', [r['label'] for r in rows],
                        {'precision': [r['precision'] for r in rows],
                         'recall': [r['recall'] for r in rows]}, 'label', 'ratio',
                        ylim=(0, 1.12))
    out.append(h.figure(src, 'Precision and recall per label',
                        'n/a: never predicted (precision) or never the true label (recall).'))
    out.append(h.table(['label', 'support', 'predicted', 'precision', 'recall'],
                       [(r['label'], r['support'], r['predicted'], r['precision'], r['recall'])
                        for r in rows],
                       caption='From the evaluation table (accuracy there: %s)'
                       % h.ratio_pct(rows[0]['accuracy'])))
  else:
    out.append(h.no_rows('evaluation'))
  out.append(h.heading('Confusion matrix'))
  if not cells:
    return out + [h.no_rows('confusion')]
  labels = confusion_labels(cells)
  path, src = files.path('confusion')
  charts.count_matrix(path, 'Confusion matrix', labels, labels, cells, 'predicted label',
                      'true label')
  out.append(h.figure(src, 'Confusion matrix of true against predicted labels'))
  out.append(h.table(['true \\ predicted'] + labels,
                     [[truth] + [cells.get((truth, p), 0) for p in labels] for truth in labels]))
  return out


def predictions_section(t: JobTables) -> List[str]:
  out = [h.heading('Predictions')]
  stats = t.rows('SELECT count(*) AS n, count(true_label) AS labelled, avg(score) AS mean, '
                 'min(score) AS low FROM predictions')[0]
  if not stats['n']:
    return out + [h.no_rows('predictions')]
  out.append(h.table(['predictions', 'with a true label', 'mean top score', 'lowest top score'],
                     [(stats['n'], stats['labelled'], stats['mean'], stats['low'])]))
  least = t.rows('SELECT uri, label, score, true_label FROM predictions ORDER BY score, uri '
                 'LIMIT ?', [LEAST_CONFIDENT])
  out.append(h.table(['image', 'predicted', 'score', 'true label'],
                     [(os.path.basename(r['uri']), r['label'], r['score'], r['true_label'])
                      for r in least],
                     caption='The %d least confident predictions' % LEAST_CONFIDENT))
  return out


def sections(t: JobTables, files: charts.ChartFiles) -> List[str]:
  return evaluation_section(t, files) + predictions_section(t)
