"""Sentiment backends: the Natural Language API, or an offline model, behind one call.

Both return the API's scale: `score` in [-1, 1] (overall polarity) and `magnitude` >= 0
(how much emotion, growing with the number of emotional sentences). The offline model is
VADER (a lexicon and rules tuned for social media, shipped inside the vaderSentiment
package: no download at run time): its `compound` is the score, and the magnitude is the
sum of the sentences' absolute compounds, as the API sums its sentences. VADER reads
English only; other languages are refused like the API refuses unsupported ones.
"""
import re
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

from transforms import tweets
from transforms.shared_api import SharedApi

API_KEY_ENV = 'LANGUAGE_API_KEY'

# Twitter's codes for text without a language: hashtags/mentions/media only, or undetected.
UNDETERMINED = frozenset({'und', 'qme', 'qht', 'qam', 'qct', 'zxx', 'art'})
LOCAL_LANGUAGES = frozenset({'en'})
_SENTENCE = re.compile(r'(?<=[.!?])\s+|\n+')


class UnsupportedLanguage(Exception):
  """The backend cannot score this language: a permanent failure for the record."""


class Analysis(NamedTuple):
  score: float
  magnitude: float
  terms: Optional[Tuple[str, ...]]   # None when terms are off


def label(score: float, positive_at: float = 0.25, negative_at: float = -0.25) -> str:
  if score >= positive_at:
    return 'positive'
  if score <= negative_at:
    return 'negative'
  return 'neutral'


class LocalSentiment:
  """VADER, offline. Cheap and thread-safe once built, so no batching concurrency."""

  def __init__(self, entities: str = 'local'):
    self._entities = entities
    self._analyzer = None

  def setup(self):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    self._analyzer = SentimentIntensityAnalyzer()

  def close(self):
    pass

  def stats(self):
    return {}

  def analyze(self, items: Sequence[Tuple[str, Optional[str]]]
              ) -> List[Union[Analysis, Exception]]:
    return [self._one(text, lang) for text, lang in items]

  def _one(self, text: str, lang: Optional[str]) -> Union[Analysis, Exception]:
    if lang and lang not in LOCAL_LANGUAGES and lang not in UNDETERMINED:
      return UnsupportedLanguage(
          "language %r is not supported by the local model (English only); use "
          "--sentiment_backend api or --languages" % lang)
    score = self._analyzer.polarity_scores(text)['compound']
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    magnitude = abs(score) if len(sentences) <= 1 else sum(
        abs(self._analyzer.polarity_scores(s)['compound']) for s in sentences)
    return Analysis(score, round(magnitude, 4), _local_terms(text, self._entities))


def _local_terms(text: str, entities: str) -> Optional[Tuple[str, ...]]:
  return tuple(tweets.terms(text)) if entities == 'local' else None


class ApiSentiment:
  """Cloud Natural Language: analyzeSentiment (and analyzeEntities with entities='api'),
  concurrent within a batch, rate-limited and retried by `transforms.language_api`."""

  def __init__(self, entities: str = 'local', api_key_env: Optional[str] = API_KEY_ENV,
               **api_options):
    from transforms.language_api import LanguageApi
    self._entities = entities
    # One client, rate limit and connection pool per worker process.
    self._shared_api = SharedApi(LanguageApi, api_options, api_key_env)
    self._client = None

  def setup(self):
    self._client = self._shared_api.acquire()

  def close(self):
    pass  # the shared client lives as long as the process

  def stats(self):
    """The process's API counts not reported yet (each count is reported once, whichever
    DoFn instance takes it)."""
    return self._client.take_stats() if self._client else {}

  def analyze(self, items: Sequence[Tuple[str, Optional[str]]]
              ) -> List[Union[Analysis, Exception]]:
    api = self._client.api
    requests = [(text, None if lang in UNDETERMINED else lang) for text, lang in items]
    scores = api.map('sentiment', requests)
    found = {}
    if self._entities == 'api':  # only for tweets whose sentiment came back
      scored = [i for i, score in enumerate(scores) if not isinstance(score, Exception)]
      found = dict(zip(scored, api.map('entities', [requests[i] for i in scored]),
                       strict=True))
    out = []
    for i, (text, _) in enumerate(items):
      if isinstance(scores[i], Exception):
        out.append(scores[i])
      elif isinstance(found.get(i), Exception):
        out.append(found[i])
      else:
        terms = (tuple(e.name.lower() for e in found[i]) if i in found
                 else _local_terms(text, self._entities))
        out.append(Analysis(scores[i].score, scores[i].magnitude, terms))
    return out
