"""The tweet_sentiment steps: decode, match keywords, score in batches, aggregate.

Scoring comes after dropping duplicates, notices and tweets no keyword matches, so the API
is only paid for tweets that reach a table. Batches come from Beam's BatchElements; the
API backend scores a batch concurrently under its rate limit.
"""
import collections
from typing import Any, Dict, List, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.timestamp import Timestamp

from transforms import sentiment, timestamps, tweets
from transforms.deadletter import error_row
from transforms.records import Record
from transforms.windowing import AggregatePerWindow, Windowing

ERRORS = 'errors'


class DropKeepAlives(beam.DoFn):
  """Streams send blank keep-alive lines; one that reaches Pub/Sub as a message is
  `filtered` (in files they are blank lines, which are not records)."""

  def __init__(self, job: str):
    self._filtered = Metrics.counter(job, 'filtered')
    self._keep_alives = Metrics.counter(job, 'filtered_keep_alives')

  def process(self, record: Record):
    payload = record.payload
    if not record.parsed and isinstance(payload, (bytes, str)) and not payload.strip():
      self._filtered.inc()
      self._keep_alives.inc()
      return
    yield record


class DecodeTweets(beam.DoFn):
  """Parsed Record -> timestamped (tweet id, (record, Tweet)); stream notices are counted
  `filtered`. Unless `include_retweets`, a retweet becomes its original (same id: the
  original and its retweets count once)."""

  def __init__(self, job: str, include_retweets: bool):
    self._include_retweets = include_retweets
    self._filtered = Metrics.counter(job, 'filtered')
    self._notices = Metrics.counter(job, 'filtered_notices')

  def process(self, record: Record):
    if isinstance(record.value, dict) and tweets.notice_kind(record.value):
      self._filtered.inc()
      self._notices.inc()
      return
    tweet = tweets.parse_tweet(record.value)
    if not self._include_retweets:
      tweet = tweets.fold_retweet(tweet)
    yield beam.window.TimestampedValue((tweet.tweet_id, (record, tweet)),
                                       Timestamp(micros=tweet.micros))


def copy_rank(record_and_tweet):
  """Which copy of a tweet to keep: its own record before a retweet's embedded copy
  before one rebuilt from a retweet; then the earliest in the input, so reruns agree."""
  record, tweet = record_and_tweet
  return tweet.source, record.source, record.line or 0, record.part or 0


class MatchKeywords(beam.DoFn):
  """(record, Tweet) -> (record, Tweet, keywords) for a unique tweet; one in a language
  not asked for, or that no keyword matches (the stream's own rules may be broader than
  --track), is `filtered`."""

  def __init__(self, job: str, keywords: List[tweets.Keyword], languages: Sequence[str] = ()):
    self._keywords = keywords
    self._languages = frozenset(languages)
    self._filtered = Metrics.counter(job, 'filtered')
    self._other_languages = Metrics.counter(job, 'filtered_language')

  def process(self, record_and_tweet):
    record, tweet = record_and_tweet
    if self._languages and (tweet.lang or 'und') not in self._languages:
      self._filtered.inc()
      self._other_languages.inc()
      return
    matched = tweets.matching_keywords(tweet, self._keywords)
    if not matched:
      self._filtered.inc()
      return
    yield record, tweet, matched


class ScoreBatches(beam.DoFn):
  """A batch of (record, Tweet, keywords) -> scored rows (each at its tweet's time), and
  error rows (tag `errors`) for tweets the backend refused or could not score."""

  def __init__(self, job: str, backend, positive_at: float, negative_at: float, clock):
    self._job = job
    self._backend = backend
    self._positive_at = positive_at
    self._negative_at = negative_at
    self._clock = clock
    self._errors = Metrics.counter(job, 'errors')
    self._stage_errors = Metrics.counter(job, 'errors_sentiment')
    self._scored = Metrics.counter(job, 'tweets_scored')

  def setup(self):
    self._backend.setup()

  def teardown(self):
    self._backend.close()

  def process(self, batch):
    results = self._backend.analyze([(tweet.text, tweet.lang) for _, tweet, _ in batch])
    self._report_api_stats()
    for (record, tweet, keywords), result in zip(batch, results, strict=True):
      if isinstance(result, Exception):
        self._errors.inc()
        self._stage_errors.inc()
        yield beam.pvalue.TaggedOutput(ERRORS, error_row(
            self._job, 'sentiment', '%s: %s' % (type(result).__name__, result), record,
            self._clock()))
        continue
      self._scored.inc()
      row = tweet_row(tweet, keywords, result, self._positive_at, self._negative_at)
      yield beam.window.TimestampedValue((row, result.terms), Timestamp(micros=tweet.micros))


  def _report_api_stats(self):
    """The backend's new counts (API attempts, retries...) as `api_<name>` counters."""
    for name, total in self._backend.stats().items():
      Metrics.counter(self._job, 'api_' + name).inc(total)


def tweet_row(tweet: tweets.Tweet, keywords: List[str], result: sentiment.Analysis,
              positive_at: float = 0.25, negative_at: float = -0.25) -> Dict[str, Any]:
  return {
      'created_at': timestamps.micros_to_rfc3339(tweet.micros),
      'tweet_id': tweet.tweet_id,
      'user_id': tweet.user_id,
      'user_name': tweet.user_name,
      'lang': tweet.lang,
      'text': tweet.text,
      'keywords': list(keywords),
      'is_retweet': tweet.is_retweet,
      'retweet_of': tweet.original_id,
      'sentiment_score': result.score,
      'sentiment_magnitude': result.magnitude,
      'sentiment_label': sentiment.label(result.score, positive_at, negative_at),
  }


class ScoreTweets(beam.PTransform):
  """(record, Tweet, keywords) -> (scored (row, terms), error rows)."""

  def __init__(self, job: str, backend, batch_size: int, positive_at: float,
               negative_at: float, clock):
    super().__init__()
    self._fn = ScoreBatches(job, backend, positive_at, negative_at, clock)
    self._batch_size = batch_size

  def expand(self, matched):
    scored = (
        matched
        | 'Batch' >> beam.BatchElements(min_batch_size=1, max_batch_size=self._batch_size)
        | 'Score' >> beam.ParDo(self._fn).with_outputs(ERRORS, main='scored'))
    return scored.scored, scored[ERRORS]


# --- aggregates ------------------------------------------------------------------------

class SentimentFn(beam.CombineFn):
  """(score, magnitude, label) -> tweets, averages and label counts."""

  def create_accumulator(self):
    return [0, 0.0, 0.0, 0, 0, 0]

  def add_input(self, acc, scored):
    score, magnitude, label = scored
    acc[0] += 1
    acc[1] += score
    acc[2] += magnitude
    acc[3 + ('positive', 'negative', 'neutral').index(label)] += 1
    return acc

  def merge_accumulators(self, accumulators):
    out = self.create_accumulator()
    for acc in accumulators:
      out = [a + b for a, b in zip(out, acc, strict=True)]
    return out

  def extract_output(self, acc):
    count = acc[0]
    # Rounded: the sums' last bits depend on the order partial results were merged in.
    return {'tweets': count, 'avg_score': round(acc[1] / count, 9) if count else 0.0,
            'avg_magnitude': round(acc[2] / count, 9) if count else 0.0,
            'positive': acc[3], 'negative': acc[4], 'neutral': acc[5]}


def _sentiment_rows(keyword, stats):
  return [dict({'keyword': keyword}, **stats)]


def _per_keyword_scores(row_and_terms):
  row, _ = row_and_terms
  scored = (row['sentiment_score'], row['sentiment_magnitude'], row['sentiment_label'])
  return [(keyword, scored) for keyword in row['keywords']]


class TopTermsFn(beam.CombineFn):
  """Each tweet's distinct terms -> the `n` most frequent (count desc, then term)."""

  def __init__(self, n: int):
    self._n = n

  def create_accumulator(self):
    return collections.Counter()

  def add_input(self, counts, terms):
    counts.update(terms)
    return counts

  def merge_accumulators(self, accumulators):
    out = collections.Counter()
    for counts in accumulators:
      out.update(counts)
    return out

  def extract_output(self, counts):
    return top_terms(counts, self._n)


def top_terms(counts: Dict[str, int], n: int) -> List[Dict[str, Any]]:
  ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
  return [{'rank': i + 1, 'term': term, 'count': count}
          for i, (term, count) in enumerate(ranked)]


def _term_rows(keyword, ranked):
  return [dict({'keyword': keyword}, **row) for row in ranked]


def _per_keyword_terms(row_and_terms):
  row, terms = row_and_terms
  if terms is None:
    return []
  out = []
  for keyword in row['keywords']:
    skip = set(tweets.keyword_words(keyword)) | {keyword}
    out.append((keyword, sorted({t for t in terms if t not in skip})))
  return out


class SentimentByWindow(beam.PTransform):

  def __init__(self, windowing: Windowing):
    super().__init__()
    self._windowing = windowing

  def expand(self, scored):
    return (
        scored
        | 'PerKeyword' >> beam.FlatMap(_per_keyword_scores)
        | 'Aggregate' >> AggregatePerWindow(self._windowing, SentimentFn(), _sentiment_rows))


class TopTerms(beam.PTransform):

  def __init__(self, windowing: Windowing, n: int):
    super().__init__()
    self._windowing = windowing
    self._n = n

  def expand(self, scored):
    return (
        scored
        | 'PerKeyword' >> beam.FlatMap(_per_keyword_terms)
        | 'Aggregate' >> AggregatePerWindow(self._windowing, TopTermsFn(self._n), _term_rows))
