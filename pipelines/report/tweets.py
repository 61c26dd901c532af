"""tweet_sentiment: volume and average sentiment per window per keyword, the positive /
neutral / negative shares, and the top terms."""
from typing import Dict, List

from pipelines.report import charts, timeseries
from pipelines.report import html as h
from pipelines.report.sources import JobTables, latest_panes, latest_whole_panes

TITLE = 'Tweet sentiment'
TABLES = ('sentiment_by_window', 'top_terms')  # what the SQL below reads
TOP_TERMS = 10
LABELS = ('positive', 'neutral', 'negative')


def window_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Volume and average sentiment per window, by keyword')]
  rows = t.rows('SELECT window_start, keyword, tweets, avg_score, positive, neutral, negative '
                'FROM %s ORDER BY window_start, keyword'
                % latest_panes('sentiment_by_window', 'keyword'))
  if not rows:
    return out + [h.no_rows('sentiment_by_window')]
  panels: Dict[str, tuple] = {}
  for r in rows:
    xs, counts, scores = panels.setdefault(r['keyword'], ([], [], []))
    xs.append(r['window_start'])
    counts.append(r['tweets'])
    scores.append(r['avg_score'])
  path, src = files.path('volume')
  timeseries.sentiment_bars(path, 'Tweets per window, coloured by average sentiment', panels,
                        window_days(t))
  out.append(h.figure(src, 'Tweets per window for each keyword, coloured by sentiment'))
  totals = keyword_totals(t)
  out.append(h.table(['keyword', 'windows', 'tweets', 'average score'],
                     [(k['keyword'], k['windows'], k['tweets'], k['avg_score'])
                      for k in totals], caption='Average score weighted by tweets per window'))
  out.append(h.details('Per window (%d rows)' % len(rows), h.table(
      ['window start (UTC)', 'keyword', 'tweets', 'average score', 'positive', 'neutral',
       'negative'],
      [(r['window_start'], r['keyword'], r['tweets'], r['avg_score'], r['positive'],
        r['neutral'], r['negative']) for r in rows])))
  return out + shares_section(totals, files)


def window_days(t: JobTables) -> float:
  """The windows' length in days (matplotlib's date unit), for bar widths."""
  length = t.rows('SELECT max(epoch(window_end) - epoch(window_start)) AS s '
                  'FROM sentiment_by_window')[0]['s']
  return (length or 60) / 86400.0


def keyword_totals(t: JobTables) -> List[Dict]:
  return t.rows(
      'SELECT keyword, count(*) AS windows, sum(tweets)::BIGINT AS tweets, '
      'CASE WHEN count(*) = 1 THEN any_value(avg_score) '
      'ELSE sum(avg_score * tweets) / sum(tweets) END AS avg_score, '
      'sum(positive)::BIGINT AS positive, sum(neutral)::BIGINT AS neutral, '
      'sum(negative)::BIGINT AS negative FROM %s GROUP BY keyword ORDER BY keyword'
      % latest_panes('sentiment_by_window', 'keyword'))


def shares_section(totals: List[Dict], files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Positive / neutral / negative shares')]
  counted = [k for k in totals if k['positive'] + k['neutral'] + k['negative']]
  if not counted:
    return out + [h.no_rows('sentiment labels')]
  path, src = files.path('shares')
  charts.stacked_bars(
      path, 'Share of tweets by sentiment label, per keyword', [k['keyword'] for k in counted],
      {label: [100.0 * k[label] / (k['positive'] + k['neutral'] + k['negative'])
               for k in counted] for label in LABELS},
      '% of the keyword\'s tweets', '', colours=charts.SENTIMENT_COLOURS, horizontal=True,
      annotate=True)
  out.append(h.figure(src, 'Sentiment label shares per keyword'))
  rows = []
  for k in counted:
    labelled = k['positive'] + k['neutral'] + k['negative']
    rows.append([k['keyword'], labelled] + [x for label in LABELS
                                            for x in (k[label], h.pct(k[label], labelled))])
  out.append(h.table(['keyword', 'tweets', 'positive', 'positive %', 'neutral', 'neutral %',
                      'negative', 'negative %'], rows))
  return out


def terms_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Top terms per keyword')]
  rows = t.rows(
      'SELECT keyword, term, n FROM (SELECT keyword, term, sum(count)::BIGINT AS n, '
      'row_number() OVER (PARTITION BY keyword ORDER BY sum(count) DESC, term) AS rank '
      'FROM %s GROUP BY keyword, term) WHERE rank <= ? ORDER BY keyword, rank'
      % latest_whole_panes('top_terms', 'keyword'), [TOP_TERMS])
  if not rows:
    return out + [h.no_rows('top_terms')]
  panels: Dict[str, tuple] = {}
  for r in rows:
    terms, counts = panels.setdefault(r['keyword'], ([], []))
    terms.append(r['term'])
    counts.append(r['n'])
  path, src = files.path('terms')
  charts.bar_panels(path, 'Top %d terms per keyword (counts summed over windows)' % TOP_TERMS,
                    panels, 'count')
  out.append(h.figure(src, 'Most frequent terms per keyword'))
  out.append(h.table(['keyword', 'rank', 'term', 'count'],
                     [(keyword, i + 1, term, n) for keyword, (terms, counts) in panels.items()
                      for i, (term, n) in enumerate(zip(terms, counts, strict=True))],
                     caption='Counts summed over windows, from each window\'s top terms'))
  return out


def sections(t: JobTables, files: charts.ChartFiles) -> List[str]:
  return window_section(t, files) + terms_section(t, files)
