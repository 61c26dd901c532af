"""Benchmark: tweet_sentiment's Natural Language API backend against a one-call-at-a-time
client, and its local (VADER) backend, on the DirectRunner.

    python bench/tweet_sentiment.py [--tweets 4000] [--local_tweets 20000] [--seed 1]
        [--latency_ms 50] [--api_qps 100] [--api_concurrency 8] [--batch_size 50]
        [--sequential 1000] [--workdir DIR] [--keep]

Why: scoring a tweet with the API is a network round trip, so the job sends each batch
concurrently (transforms.language_api: a thread pool of --api_concurrency under a token
bucket of --api_qps per worker process). This measures, against a local server speaking the
real Natural Language v1 REST API (tests/fake_language_api.py) that answers every request
after --latency_ms:

* the api backend through the Beam job (DirectRunner, in-process; the server runs in this
  process and the job talks to it over HTTP on 127.0.0.1): tweets/s, API calls/s, and from
  the server's own request log the most requests that arrived in any 1 s window (the rate
  limit holds if that is at most qps + the bucket's burst of 1) and the most in flight;
* the baseline: a plain loop calling google-cloud-language's
  LanguageServiceClient.analyze_sentiment once per tweet, one at a time, over the texts the
  job scored (the first --sequential of them: at 50 ms a call it does about 20 a second);
  the ratio of the two rates shows the concurrency working up to the rate limit;
* the local backend through the Beam job on a larger input (--local_tweets), in-process and
  with two worker processes: tweets/s.

Input tweets come from pipelines/samples/tweet_sentiment.py (both streams and the search
capture in one CRLF NDJSON file, with its duplicates, notices and broken records), tracked
with its TRACK keywords. Correctness is checked, not timed: Beam's counters against the
generator's ground truth (records_read = rows_tweets + duplicates + filtered + errors), the
tweet ids and texts written against the generator's originals, and every score the api run
and the baseline got against the server's own rule (score_document). Timings are reported,
never asserted; the exit status is 1 when a check fails or the server saw more requests in a
1 s window than the limit allows.
"""
import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ['PYTHONPATH'] = os.pathsep.join(  # Beam's worker processes import the project too
    p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)

from google.auth.credentials import AnonymousCredentials  # noqa: E402
from google.cloud import language_v1  # noqa: E402

from bench.common import (MULTI, beam_in_process, beam_subprocess, environment,  # noqa: E402
                          finish, rows, timed)
from pipelines import tweet_sentiment as job  # noqa: E402
from pipelines.samples import tweet_sentiment as sample  # noqa: E402
from tests.fake_language_api import FakeLanguageApi, score_document  # noqa: E402
from transforms import sentiment, tweets  # noqa: E402

TRACK = ','.join(sample.TRACK)
BURST = 1  # transforms.language_api.RateLimiter's default: what a 1 s window may hold extra
TOL = 1e-6  # scores travel as float32
COUNTERS = ('records_read', 'rows_tweets', 'duplicates', 'filtered', 'errors')


def generate(path, n, seed):
  """Writes `n` unique tweets (plus the generator's faults) as NDJSON; returns the truth."""
  with open(path, 'w', encoding='utf-8') as fh:
    sample.write_ndjson(fh, n, seed)
  return sample.ground_truth(n, seed)


def describe(label, path, truth, gen_s, keywords):
  matched = sum(1 for o in truth['original_list'] if keywords(o))
  print('%s: %s (generated in %.1f s, %.1f MB)\n  %d records: %d unique tweets, %d duplicates, '
        '%d filtered (notices), %d errors; %d originals after folding %d retweets, %d of them '
        'matching --track' % (label, path, gen_s, os.path.getsize(path) / 1e6, truth['records'],
                              truth['tweets'], truth['duplicates'], truth['filtered'],
                              truth['errors'], truth['originals'], truth['retweets_folded'],
                              matched))


# --- what the job should write -----------------------------------------------------------

def job_keywords(original, _keywords=tweets.parse_track(TRACK)):
  """The job's own keyword rule applied to the generator's full text and hashtags."""
  tweet = types.SimpleNamespace(text=original['full_text'], hashtags=original['hashtags'])
  return tweets.matching_keywords(tweet, _keywords)


def local_scores(lang):
  """Whether the local model reads this language (by default the job filters others)."""
  return not lang or lang in sentiment.LOCAL_LANGUAGES or lang in sentiment.UNDETERMINED


def expected(truth, backend):
  """(counter -> expected value, tweet id -> full text of the rows expected)."""
  matched = [o for o in truth['original_list'] if job_keywords(o)]
  scored = [o for o in matched if backend == 'api' or local_scores(o['lang'])]
  counts = {'records_read': truth['records'], 'rows_tweets': len(scored),
            'duplicates': truth['duplicates'] + truth['retweets_folded'],
            'filtered': truth['filtered'] + truth['originals'] - len(scored),
            'errors': truth['errors']}
  return counts, {o['id']: o['full_text'] for o in scored}


def keyword_note(truth):
  """Originals whose generator-side `keywords` differ from the job's rule (reported only)."""
  differ = [o for o in truth['original_list'] if sorted(o['keywords']) != sorted(job_keywords(o))]
  if differ:
    example = differ[0]
    print('  note: the generator\'s own keyword matches differ from the job\'s rule on %d '
          'originals (not a failure here; the job\'s rule decides the expected rows), e.g. %r: '
          'generator %s, job %s' % (len(differ), example['full_text'][:80],
                                    example['keywords'], job_keywords(example)))
  return len(differ)


def counters(out):
  with open(os.path.join(out, '_metrics.json'), encoding='utf-8') as fh:
    return json.load(fh)['counters']


def check_run(name, out, truth, backend):
  """Beam's counters and rows against the truth; for the api run every score against the
  server's rule. Returns (problems, counters, expected counters, scored rows)."""
  found = counters(out)
  want, texts = expected(truth, backend)
  problems = ['%s: %s = %s, expected %s' % (name, k, found.get(k), v)
              for k, v in want.items() if found.get(k) != v]
  identity = sum(found.get(k, 0) for k in COUNTERS[1:])
  if found.get('records_read') != identity:
    problems.append('%s: records_read %s != rows_tweets + duplicates + filtered + errors = %d'
                    % (name, found.get('records_read'), identity))
  written = list(rows(out, 'tweets'))
  got = {r['tweet_id']: r for r in written}
  if len(written) != found.get('rows_tweets') or len(got) != len(written):
    problems.append('%s: %d tweet rows (%d ids), rows_tweets counter %s'
                    % (name, len(written), len(got), found.get('rows_tweets')))
  missing, extra = set(texts) - set(got), set(got) - set(texts)
  wrong_text = sum(got[i]['text'] != texts[i] for i in set(texts) & set(got))
  if missing or extra or wrong_text:
    problems.append('%s: %d expected tweets missing, %d unexpected, %d with another text'
                    % (name, len(missing), len(extra), wrong_text))
  if backend == 'api':
    bad = [r for r in written if not same_score(r['text'], r['sentiment_score'],
                                                r['sentiment_magnitude'])]
    if bad:
      problems.append('%s: %d scores differ from the server\'s score_document, e.g. %r: %s'
                      % (name, len(bad), bad[0]['text'][:60], bad[0]['sentiment_score']))
  return problems, found, want, written


def same_score(text, score, magnitude):
  want_score, want_magnitude, _ = score_document(text)
  return abs(score - want_score) < TOL and abs(magnitude - want_magnitude) < TOL


# --- the runs ----------------------------------------------------------------------------

def api_args(endpoint, args):
  return ['--track', TRACK, '--sentiment_backend', 'api', '--language_endpoint', endpoint,
          '--api_qps', str(args.api_qps), '--api_concurrency', str(args.api_concurrency),
          '--batch_size', str(args.batch_size)]


def server_figures(fake):
  """Arrivals, their span, calls/s over it, most in any 1 s window, most in flight."""
  log = fake.requests
  span = (log[-1].t - log[0].t) if len(log) > 1 else 0.0
  return {'requests': len(log), 'span_s': span,
          'calls_per_s': (len(log) - 1) / span if span else 0.0,
          'max_in_1s': fake.max_in_window(1.0), 'max_in_flight': fake.max_in_flight(),
          'statuses': sorted({r.status for r in log}, key=str)}


def sequential(endpoint, items):
  """One analyze_sentiment call at a time with the plain client; returns the scores."""
  client = language_v1.LanguageServiceClient(
      credentials=AnonymousCredentials(), transport='rest',
      client_options={'api_endpoint': endpoint})
  scores = []
  try:
    for text, lang in items:
      document = language_v1.Document(content=text, type_=language_v1.Document.Type.PLAIN_TEXT)
      if lang and lang not in sentiment.UNDETERMINED:
        document.language = lang
      response = client.analyze_sentiment(document=document,
                                          encoding_type=language_v1.EncodingType.UTF8)
      scores.append((response.document_sentiment.score, response.document_sentiment.magnitude))
  finally:
    client.transport.close()
  return scores


def run_local(path, out, extra):
  """Local backend in-process, then with two worker processes (a subprocess if the
  in-process multi-processing mode fails here), as common.time_beam does."""
  logging.getLogger('apache_beam.runners.portability').setLevel(logging.ERROR)
  times, details = {}, {}
  times['local'], _ = timed(beam_in_process, job, path, out('local'), extra)
  try:
    times['local_mp'], _ = timed(beam_in_process, job, path, out('local_mp'), MULTI + extra)
    details['local_mp'] = 'in-process, ' + ' '.join(MULTI)
  except Exception as e:  # noqa: BLE001
    print('in-process multi_processing failed (%r); running it as a subprocess' % e)
    times['local_mp'], _ = timed(beam_subprocess, job, path, out('local_mp'), MULTI + extra)
    details['local_mp'] = 'subprocess `python -m pipelines %s`, %s' % (job.JOB, ' '.join(MULTI))
  return times, details


# --- report ------------------------------------------------------------------------------

def print_counters(found, want):
  names = list(found)
  line = '%-14s' + ' %9s %9s' * len(names)
  print('\ncounters against the ground truth (expected: the generator\'s counts with the job\'s '
        'keyword rule; duplicates include folded retweets, filtered the unmatched originals '
        'and, for the local model, the languages it does not read):')
  print(line % ('', *[x for n in names for x in (n + ' exp', 'found')]))
  for counter in COUNTERS:
    print(line % (counter, *[x for n in names
                             for x in (want[n][counter], found[n].get(counter, '-'))]))


def print_table(figures):
  print('\n%-44s %8s %8s %8s %10s %10s' % ('run', 'seconds', 'records', 'scored',
                                            'records/s', 'tweets/s'))
  for label, seconds, records, scored in figures:
    print('%-44s %8.2f %8s %8d %10s %10.1f' % (
        label, seconds, records if records is not None else '-', scored,
        '%.0f' % (records / seconds) if records is not None else '-', scored / seconds))
  print('(tweets/s = scored tweets (rows of the tweets table, or calls for the loop) / wall '
        'seconds, job start-up included)')


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--tweets', type=int, default=4000,
                      help='unique tweets for the api runs (default 4000: about 2,200 scored)')
  parser.add_argument('--local_tweets', type=int, default=20_000,
                      help='unique tweets for the local-backend runs (default 20000)')
  parser.add_argument('--seed', type=int, default=1)
  parser.add_argument('--latency_ms', type=float, default=50,
                      help="the server's added latency per request (default 50)")
  parser.add_argument('--api_qps', type=int, default=100)
  parser.add_argument('--api_concurrency', type=int, default=8)
  parser.add_argument('--batch_size', type=int, default=50)
  parser.add_argument('--sequential', type=int, default=1000,
                      help='calls in the one-at-a-time baseline, over the first texts the job '
                      'scored (default 1000; 0: all of them)')
  parser.add_argument('--workdir', help='default: a new temporary directory')
  parser.add_argument('--keep', action='store_true', help='keep the inputs and the outputs')
  args = parser.parse_args(argv)
  if min(args.tweets, args.local_tweets) < sample.MIN_TWEETS:
    parser.error('--tweets and --local_tweets must be at least %d' % sample.MIN_TWEETS)
  start = time.perf_counter()
  work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix='bench_tweet_sentiment_'))
  os.makedirs(work, exist_ok=True)
  api_path = os.path.join(work, 'tweets_api.ndjson')
  local_path = os.path.join(work, 'tweets_local.ndjson')
  out = lambda name: os.path.join(work, 'out', name)  # noqa: E731

  gen_s, api_truth = timed(generate, api_path, args.tweets, args.seed)
  describe('api input', api_path, api_truth, gen_s, job_keywords)
  differ = keyword_note(api_truth)
  gen_s, local_truth = timed(generate, local_path, args.local_tweets, args.seed)
  describe('local input', local_path, local_truth, gen_s, job_keywords)
  print('track: %s' % TRACK)

  problems, found, want, figures, server = [], {}, {}, [], {}
  with FakeLanguageApi(latency_s=args.latency_ms / 1000) as fake:
    print('\nserver: %s, %g ms added per request (in this process)' % (fake.endpoint,
                                                                      args.latency_ms))
    api_s, printed = timed(beam_in_process, job, api_path, out('api'), api_args(fake.endpoint,
                                                                                args))
    server['api'] = server_figures(fake)
    p, found['api'], want['api'], written = check_run('api', out('api'), api_truth, 'api')
    problems += p
    scored_api = found['api'].get('rows_tweets', 0)
    figures.append(('api backend, Beam in-process', api_s, found['api'].get('records_read'),
                    scored_api))
    if server['api']['requests'] != found['api'].get('api_attempts'):
      problems.append('api: the server saw %d requests, the job counted %s attempts'
                      % (server['api']['requests'], found['api'].get('api_attempts')))

    fake.reset_log()
    items = [(r['text'], r['lang']) for r in sorted(written, key=lambda r: r['created_at'])]
    items = items[:args.sequential] if args.sequential else items
    seq_s, scores = timed(sequential, fake.endpoint, items)
    server['sequential'] = server_figures(fake)
    bad = sum(not same_score(text, *score) for (text, _), score in zip(items, scores,
                                                                       strict=True))
    if bad or len(scores) != len(items) or server['sequential']['requests'] != len(items):
      problems.append('sequential: %d of %d scores differ from score_document (%d requests)'
                      % (bad, len(items), server['sequential']['requests']))
    figures.append(('sequential client loop (analyze_sentiment)', seq_s, None, len(items)))

  local_extra = ['--track', TRACK, '--sentiment_backend', 'local']
  local_times, local_details = run_local(local_path, out, local_extra)
  for name, label in (('local', 'local (VADER), Beam in-process'),
                      ('local_mp', 'local (VADER), Beam 2 procs')):
    p, found[name], want[name], _ = check_run(name, out(name), local_truth, 'local')
    problems += p
    figures.append((label, local_times[name], found[name].get('records_read'),
                    found[name].get('rows_tweets', 0)))

  print('\nBeam DirectRunner (api backend, in-process) printed:\n' + printed.rstrip())
  print_counters(found, want)
  print_table(figures)
  api_rate, seq_rate = scored_api / api_s, len(items) / seq_s
  ratio = api_rate / seq_rate
  limit = args.api_qps + BURST
  a, s = server['api'], server['sequential']
  print('(local 2 procs: %s)' % local_details['local_mp'])
  print('\napi backend vs one call at a time: %.2fx the tweets/s (%.1f vs %.1f; at most about '
        '%.1fx when the rate limit binds: %d qps vs 1 / (latency + overhead))'
        % (ratio, api_rate, seq_rate, args.api_qps / seq_rate, args.api_qps))
  print('api backend (--api_qps %d --api_concurrency %d --batch_size %d), from the server\'s log:'
        % (args.api_qps, args.api_concurrency, args.batch_size))
  print('  %d requests over %.2f s (first to last arrival): %.1f calls/s; most in any 1 s '
        'window: %d (limit %d + burst %d = %d): %s; most in flight: %d' % (
            a['requests'], a['span_s'], a['calls_per_s'], a['max_in_1s'], args.api_qps, BURST,
            limit, 'OK' if a['max_in_1s'] <= limit else 'OVER THE LIMIT', a['max_in_flight']))
  print('  job: %d API calls in %.2f s wall = %.1f calls/s' % (
      found['api'].get('api_calls', 0), api_s, found['api'].get('api_calls', 0) / api_s))
  print('sequential loop, from the server\'s log: %d requests over %.2f s: %.1f calls/s; most '
        'in any 1 s window: %d; most in flight: %d' % (
            s['requests'], s['span_s'], s['calls_per_s'], s['max_in_1s'], s['max_in_flight']))
  if a['max_in_1s'] > limit:
    problems.append('api: the server saw %d requests in 1 s, over the limit %d'
                    % (a['max_in_1s'], limit))
  env = environment()
  print('machine: %(cpu_count)d CPUs (%(machine)s, %(cpu)s); python %(python)s, apache_beam '
        '%(apache_beam)s' % env)

  report = {
      'seed': args.seed, 'tweets': args.tweets, 'local_tweets': args.local_tweets,
      'latency_ms': args.latency_ms, 'api_qps': args.api_qps,
      'api_concurrency': args.api_concurrency, 'batch_size': args.batch_size, 'track': TRACK,
      'seconds': {label: sec for label, sec, _, _ in figures},
      'tweets_per_s': {label: n / sec for label, sec, _, n in figures},
      'scored': {label: n for label, _, _, n in figures},
      'api_vs_sequential': ratio, 'server': server, 'rate_limit_with_burst': limit,
      'counters': found, 'expected_counters': want, 'local_multi_processing':
      local_details['local_mp'], 'generator_keyword_differences': differ,
      'environment': env, 'problems': problems}
  if not args.keep:
    os.remove(api_path)
    shutil.rmtree(os.path.join(work, 'out'), ignore_errors=True)
  finish(work, 'tweet_sentiment', report, local_path, lambda _: out('local'), args.keep, start)
  if problems:
    print('FAILED:\n  ' + '\n  '.join(problems))
  return 1 if problems else 0


if __name__ == '__main__':
  sys.exit(main())
