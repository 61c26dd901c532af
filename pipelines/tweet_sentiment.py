"""tweet_sentiment: tweets (Pub/Sub, or captured streams in files) -> keyword tracking,
sentiment per tweet (Natural Language API or an offline model), and per-window sentiment,
volume and top terms.

    python -m pipelines.tweet_sentiment [--input GLOB|projects/P/subscriptions/S]
        [--output DIR|PROJECT:DATASET] [--track 'nova x,#novax,recall'] [--window 60]
        [--sentiment_backend local|api] [--api_qps 10] [--entities local|api|off]
"""
import sys
import time
from typing import Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.launch import JobPlan, build_job, main, run_job
from pipelines.options import ENDPOINT, ConfigError, JobOptions, add_switch, described, positive, score
from transforms import sentiment, tweet_tables, tweets
from transforms.deadletter import TryParDo
from transforms.dedupe import DropDuplicates
from transforms.sources import ParseJsonRecords
from transforms.windowing import Windowing

JOB = 'tweet_sentiment'
DESCRIPTION = ('Tweets (v1.1 or v2 stream records) -> tweets with sentiment, '
               'sentiment_by_window and top_terms per --track keyword, and errors.')
DEFAULT_WINDOW_S = 60


class TweetSentimentOptions(PipelineOptions):

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('tweet_sentiment')
    group.add_argument(
        '--track', default=None, type=described('track', r'^[^,]*[^,\s][^,]*(,[^,]*)*$'),
        help="Comma-separated keywords/#hashtags, matched case-insensitively at word "
        "boundaries in the full text and hashtags, e.g. 'nova x,#novax,recall'. Without "
        "it every tweet is kept, under the keyword *.")
    group.add_argument(
        '--languages', default=None,
        type=described('languages', r'^(all|[A-Za-z]{2,3}(-[A-Za-z0-9]+)*(\s*,\s*[A-Za-z]{2,3}(-[A-Za-z0-9]+)*)*)$'),
        help="Comma-separated tweet languages to keep (e.g. 'en,es'); others are "
        "filtered. Default: what the backend reads: every language for api; English and "
        "Twitter's undetermined codes (und, qme, qht, ...) for local. 'all' keeps all.")
    add_switch(
        group, '--include_retweets',
        help='Keep each retweet as its own row (scored on the original text). Default: '
        'a retweet counts as its original, once.')
    group.add_argument(
        '--sentiment_backend', choices=('local', 'api'), default='local',
        help='local: VADER, offline (English); api: Cloud Natural Language '
        'analyzeSentiment (default local).')
    group.add_argument(
        '--entities', choices=('local', 'api', 'off'), default='local',
        help='Terms for top_terms: local tokens (stop words, URLs and mentions dropped, '
        'hashtags kept), api: analyzeEntities names, off: no top_terms (default local).')
    group.add_argument(
        '--api_qps', type=positive, default=10,
        help='Natural Language requests per second per worker process, retries included '
        '(default 10; the default quota is 600 per minute per project).')
    group.add_argument(
        '--api_concurrency', type=positive, default=8,
        help='Concurrent Natural Language requests per worker process (default 8).')
    group.add_argument(
        '--language_endpoint', default=None,
        type=described('language_endpoint', ENDPOINT),
        help='Natural Language endpoint, e.g. http://127.0.0.1:8080 for a local server '
        '(which needs no credentials). Default: language.googleapis.com.')
    group.add_argument(
        '--api_max_attempts', type=positive, default=6,
        help='Attempts per request on 429/5xx before the tweet goes to errors (default 6).')
    group.add_argument(
        '--batch_size', type=positive, default=50,
        help='Tweets scored per batch (the API backend sends a batch concurrently; '
        'default 50).')
    group.add_argument(
        '--top_terms', type=positive, default=20,
        help='Terms per window and keyword in top_terms (default 20).')
    group.add_argument(
        '--positive_threshold', type=score, default=0.25,
        help='sentiment_label is positive at a score >= this (default 0.25).')
    group.add_argument(
        '--negative_threshold', type=score, default=-0.25,
        help='sentiment_label is negative at a score <= this (default -0.25).')


def _csv(text: Optional[str]):
  return [part.strip() for part in (text or '').split(',') if part.strip()]


def backend_from_options(opts: TweetSentimentOptions, api_key: Optional[str] = None):
  if opts.positive_threshold <= opts.negative_threshold:
    raise ConfigError('--positive_threshold (%g) must be above --negative_threshold (%g)'
                      % (opts.positive_threshold, opts.negative_threshold))
  if opts.sentiment_backend == 'local':
    if opts.entities == 'api':
      raise ConfigError('--entities api needs --sentiment_backend api')
    return sentiment.LocalSentiment(opts.entities)
  return sentiment.ApiSentiment(
      opts.entities, endpoint=opts.language_endpoint, api_key=api_key,
      qps=opts.api_qps, max_concurrency=int(opts.api_concurrency),
      max_attempts=int(opts.api_max_attempts))


def languages(opts: TweetSentimentOptions):
  """--languages, or by default the languages the backend can score (none = all)."""
  if opts.languages:
    chosen = _csv(opts.languages)
    return [] if chosen == ['all'] else chosen
  if opts.sentiment_backend == 'local':
    return sorted(sentiment.LOCAL_LANGUAGES | sentiment.UNDETERMINED)
  return []


class TweetSentiment(beam.PTransform):
  """Records -> {'tweets', 'sentiment_by_window', 'top_terms', 'errors'}."""

  def __init__(self, backend, windowing: Windowing = Windowing(window_s=DEFAULT_WINDOW_S,
                                                               batch_windows=True),
               track: Optional[str] = None, languages=(), include_retweets: bool = False,
               top_terms: int = 20, batch_size: int = 50, positive_at: float = 0.25,
               negative_at: float = -0.25, dedupe_ttl_s: float = 3600, clock=time.time):
    super().__init__()
    self._backend = backend
    self._windowing = windowing
    self._keywords = tweets.parse_track(track)
    self._languages = list(languages)
    self._include_retweets = include_retweets
    self._top_terms = top_terms
    self._batch_size = batch_size
    self._positive_at = positive_at
    self._negative_at = negative_at
    self._dedupe_ttl_s = dedupe_ttl_s
    self._clock = clock

  def expand(self, records):
    records = records | 'DropKeepAlives' >> beam.ParDo(tweet_tables.DropKeepAlives(JOB))
    parsed, parse_errors = records | 'ParseJson' >> ParseJsonRecords(JOB, self._clock)
    keyed, decode_errors = parsed | 'DecodeTweets' >> TryParDo(
        tweet_tables.DecodeTweets(JOB, self._include_retweets),
        JOB, 'decode_tweet', self._clock)
    unique = keyed | 'DropDuplicates' >> DropDuplicates(
        JOB, self._dedupe_ttl_s, prefer=tweet_tables.copy_rank)
    matched = unique | 'MatchKeywords' >> beam.ParDo(
        tweet_tables.MatchKeywords(JOB, self._keywords, self._languages))
    scored, score_errors = matched | 'Score' >> tweet_tables.ScoreTweets(
        JOB, self._backend, self._batch_size, self._positive_at, self._negative_at,
        self._clock)
    tables = {
        'tweets': scored | 'TweetRows' >> beam.Map(lambda row_and_terms: row_and_terms[0]),
        'sentiment_by_window': scored | 'SentimentByWindow' >> tweet_tables.SentimentByWindow(
            self._windowing),
        'errors': (parse_errors, decode_errors, score_errors) | 'Errors' >> beam.Flatten(),
    }
    tables['top_terms'] = scored | 'TopTerms' >> tweet_tables.TopTerms(
        self._windowing, self._top_terms)
    return tables


def _build(records, options: PipelineOptions, streaming: bool):
  opts = options.view_as(TweetSentimentOptions)
  job_options = options.view_as(JobOptions)
  backend = backend_from_options(opts, job_options.api_key)
  tables = records | 'TweetSentiment' >> TweetSentiment(
      backend,
      Windowing.from_options(job_options, streaming, batch_windows=True,
                             default_window_s=DEFAULT_WINDOW_S),
      opts.track, languages(opts), opts.include_retweets, int(opts.top_terms),
      int(opts.batch_size), opts.positive_threshold, opts.negative_threshold,
      job_options.dedupe_ttl)
  if opts.entities == 'off':
    tables.pop('top_terms')
  return tables


def build(argv=None, save_main_session=True) -> JobPlan:
  """The job's pipeline for `argv`, not run (tests inspect it)."""
  return build_job(JOB, TweetSentimentOptions, _build, argv, save_main_session, DESCRIPTION)


def run(argv=None, save_main_session=True) -> Optional[beam.runners.runner.PipelineResult]:
  return run_job(JOB, TweetSentimentOptions, _build, argv, save_main_session, DESCRIPTION)


if __name__ == '__main__':
  sys.exit(main(JOB, run))
