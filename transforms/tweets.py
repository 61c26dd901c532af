"""Tweets in both API shapes -> one normalised Tweet, keyword matching and terms.

v1.1 statuses (streaming API, saved searches) and v2 filtered-stream records differ in
almost every field name; everything after `parse_tweet` sees one shape. A retweet carries
its original (v1.1 `retweeted_status`, v2 `includes.tweets`); by default it is folded into
that original, so a tweet counts once however often it is retweeted, scored on the
original's full text.
"""
import datetime
import html
import re
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from transforms import timestamps
from transforms.deadletter import RecordError

# Stream records that are not tweets: rate-limit and deletion notices, disconnects.
NOTICE_KEYS = ('limit', 'delete', 'scrub_geo', 'status_withheld', 'user_withheld',
               'disconnect', 'warning', 'event', 'friends', 'direct_message')
_V1_TIME = '%a %b %d %H:%M:%S %z %Y'


class Tweet(NamedTuple):
  tweet_id: str
  micros: int                     # when it was posted, epoch microseconds
  user_id: Optional[str]
  user_name: Optional[str]        # screen name / username
  lang: Optional[str]
  text: str                       # the full text (for a retweet: the original's)
  hashtags: Tuple[str, ...]       # without '#', as written
  is_retweet: bool = False
  original_id: Optional[str] = None
  rules: Tuple[Tuple[str, Optional[str]], ...] = ()   # v2 matching_rules (id, tag)
  original: Optional['Tweet'] = None   # a retweet's original, when the record carries it
  source: int = 0   # OWN record, EMBEDDED in a retweet, or REBUILT from one: the best wins


OWN, EMBEDDED, REBUILT = 0, 1, 2
MAX_TEXT_CHARS = 25_000  # Twitter's longest post (a note tweet)
# Snowflake ids (since November 2010) hold their creation time in milliseconds.
_SNOWFLAKE_EPOCH_MS = 1288834974657
_FIRST_SNOWFLAKE = 1 << 32
# Tweets are from Twitter's launch to well within this century.
MIN_MICROS, MAX_MICROS = 1143072000000000, 4102444800000000 - 1  # 2006-03-23 .. 2099


def notice_kind(record: Dict[str, Any]) -> Optional[str]:
  """The kind of a non-tweet stream record ('limit', 'delete', 'errors', ...), else None."""
  for key in NOTICE_KEYS:
    if key in record and 'id_str' not in record and 'data' not in record:
      return key
  if 'errors' in record and 'data' not in record:
    return 'errors'  # v2: operational-disconnect and other stream problems
  return None


def parse_tweet(record: Any) -> Tweet:
  """A tweet record in either shape -> Tweet; RecordError when it is not a usable tweet."""
  if not isinstance(record, dict):
    raise RecordError('record is not a JSON object')
  if 'data' in record:
    return _v2(record)
  return _v1(record)


# --- v1.1 ------------------------------------------------------------------------------

def _v1(status: Dict[str, Any], rules=()) -> Tweet:
  tweet_id = _id(status.get('id_str'), status.get('id'))
  original = status.get('retweeted_status')
  if original is not None:
    if not isinstance(original, dict):
      raise RecordError('retweeted_status is not an object')
    parsed = _v1(original)
  user = status.get('user') if isinstance(status.get('user'), dict) else {}
  text, hashtags = _v1_text(status)
  tweet = Tweet(
      tweet_id=tweet_id,
      micros=_tweet_micros(tweet_id, _v1_micros(status)),
      user_id=_optional_id(user.get('id_str'), user.get('id')),
      user_name=_optional_str(user.get('screen_name')),
      lang=_optional_str(status.get('lang')),
      text=text,
      hashtags=hashtags,
      rules=tuple(rules))
  if original is not None:
    return tweet._replace(is_retweet=True, original_id=parsed.tweet_id, text=parsed.text,
                          hashtags=parsed.hashtags, lang=tweet.lang or parsed.lang,
                          original=parsed)
  return tweet


def _v1_text(status: Dict[str, Any]) -> Tuple[str, Tuple[str, ...]]:
  """The untruncated text: extended_tweet.full_text (streaming), full_text (REST with
  tweet_mode=extended) or text. v1.1 HTML-escapes &, < and >; they are unescaped."""
  extended = status.get('extended_tweet')
  source = extended if isinstance(extended, dict) and 'full_text' in extended else status
  text = source.get('full_text', source.get('text'))
  if not isinstance(text, str):
    raise RecordError('tweet %s has no text' % (status.get('id_str') or status.get('id')))
  _check_length(text)
  entities = source.get('entities') if isinstance(source.get('entities'), dict) else \
      status.get('entities')
  tags = entities.get('hashtags') if isinstance(entities, dict) else None
  return html.unescape(text), tuple(
      t['text'] for t in tags or () if isinstance(t, dict) and isinstance(t.get('text'), str))


def _v1_micros(status: Dict[str, Any]) -> int:
  """timestamp_ms (milliseconds, a string) when present, else created_at (seconds)."""
  raw_ms = status.get('timestamp_ms')
  if raw_ms is not None:
    try:
      return int(raw_ms) * 1000
    except (TypeError, ValueError) as e:
      raise RecordError('timestamp_ms %r is not epoch milliseconds' % (raw_ms,)) from e
  created = status.get('created_at')
  if not isinstance(created, str):
    raise RecordError('tweet has no created_at')
  try:
    return int(datetime.datetime.strptime(created, _V1_TIME).timestamp()) * 1_000_000
  except (ValueError, OverflowError) as e:
    raise RecordError('created_at %r is not like "Wed Oct 10 20:19:24 +0000 2018"'
                      % created) from e


# --- v2 --------------------------------------------------------------------------------

def _v2(record: Dict[str, Any]) -> Tweet:
  data = record['data']
  if not isinstance(data, dict):
    raise RecordError('data is not an object')
  includes = record.get('includes') if isinstance(record.get('includes'), dict) else {}
  users = {str(u['id']): u for u in includes.get('users') or ()
           if isinstance(u, dict) and isinstance(u.get('id'), (str, int))}
  rules = tuple((str(r.get('id')), _optional_str(r.get('tag')))
                for r in record.get('matching_rules') or () if isinstance(r, dict))
  tweet = _v2_tweet(data, users)._replace(rules=rules)
  retweeted = [ref.get('id') for ref in data.get('referenced_tweets') or ()
               if isinstance(ref, dict) and ref.get('type') == 'retweeted']
  if not retweeted:
    return tweet
  original_id = _id(retweeted[0], None)
  original = next((t for t in includes.get('tweets') or ()
                   if isinstance(t, dict) and str(t.get('id')) == original_id), None)
  if original is None:  # not expanded: the original is the retweet's text without 'RT @x: '
    text = re.sub(r'^RT @\w+: ', '', tweet.text)
    return tweet._replace(is_retweet=True, original_id=original_id, text=text,
                          source=REBUILT)
  parsed = _v2_tweet(original, users)._replace(rules=rules)
  return tweet._replace(is_retweet=True, original_id=original_id, text=parsed.text,
                        hashtags=parsed.hashtags, lang=tweet.lang or parsed.lang,
                        original=parsed)


def _v2_tweet(data: Dict[str, Any], users: Dict[Any, Dict[str, Any]]) -> Tweet:
  tweet_id = _id(data.get('id'), None)
  note = data.get('note_tweet')
  source = note if isinstance(note, dict) and isinstance(note.get('text'), str) else data
  text = source.get('text')
  if not isinstance(text, str):
    raise RecordError('tweet %s has no text' % tweet_id)
  _check_length(text)
  created = data.get('created_at')
  if not isinstance(created, str):
    raise RecordError('tweet %s has no created_at' % tweet_id)
  try:
    stated = timestamps.parse_rfc3339_micros(created)
  except (ValueError, OverflowError) as e:
    raise RecordError('created_at %r is not RFC 3339' % created) from e
  micros = _tweet_micros(tweet_id, stated)
  entities = source.get('entities') if isinstance(source.get('entities'), dict) else \
      data.get('entities')
  tags = entities.get('hashtags') if isinstance(entities, dict) else None
  author = _optional_id(data.get('author_id'), None)
  user = users.get(author) or {}
  return Tweet(
      tweet_id=tweet_id, micros=micros, user_id=author,
      user_name=_optional_str(user.get('username')), lang=_optional_str(data.get('lang')),
      text=html.unescape(text), hashtags=tuple(
          t['tag'] for t in tags or () if isinstance(t, dict) and isinstance(t.get('tag'), str)))


def _check_length(text: str) -> None:
  if len(text) > MAX_TEXT_CHARS:
    raise RecordError('text of %d characters is longer than any tweet (%d)'
                      % (len(text), MAX_TEXT_CHARS))


def snowflake_micros(tweet_id: str) -> Optional[int]:
  """The creation time a snowflake id holds (ms precision), or None for older ids."""
  number = int(tweet_id)
  if number < _FIRST_SNOWFLAKE or number >= 1 << 63:
    return None
  return ((number >> 22) + _SNOWFLAKE_EPOCH_MS) * 1000


def _tweet_micros(tweet_id: str, stated: int) -> int:
  """A time in whole seconds (created_at) is refined to the snowflake id's millisecond
  when they agree, so every copy of a tweet (its record with timestamp_ms, a retweet's
  embedded copy with created_at only) has the same time; RecordError outside 2006-2099."""
  if not MIN_MICROS <= stated <= MAX_MICROS:
    raise RecordError('tweet time %s is outside 2006-2099' % _readable(stated))
  if stated % 1_000_000:
    return stated  # already finer than a second (timestamp_ms, v2 fractions)
  snowflake = snowflake_micros(tweet_id)
  if snowflake is not None and abs(snowflake - stated) < 1_000_000:
    return snowflake
  return stated


def _readable(micros: int) -> str:
  try:
    return timestamps.micros_to_rfc3339(micros)
  except (OverflowError, ValueError):
    return '%d us' % micros


def fold_retweet(tweet: Tweet) -> Tweet:
  """A retweet -> its original (a plain tweet is itself), so each tweet counts once
  however often it is retweeted. An original the record does not carry (v2 without
  `includes.tweets`) is rebuilt from the retweet: its id, the retweet's time and text."""
  while tweet.is_retweet and tweet.original is not None:
    tweet = tweet.original._replace(source=EMBEDDED)
  if not tweet.is_retweet:
    return tweet
  micros = snowflake_micros(tweet.original_id) or tweet.micros
  return Tweet(tweet.original_id, micros, None, None, tweet.lang, tweet.text,
               tweet.hashtags, rules=tweet.rules, source=REBUILT)


# --- fields ----------------------------------------------------------------------------

def _id(id_str: Any, number: Any) -> str:
  """Tweet ids are 64-bit: id_str is authoritative (a double mangles `id`)."""
  for value in (id_str, number):
    if isinstance(value, str) and value.isascii() and value.isdigit():
      return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
      return str(value)
  raise RecordError('tweet has no id (id_str/id)')


def _optional_id(id_str: Any, number: Any) -> Optional[str]:
  try:
    return _id(id_str, number)
  except RecordError:
    return None


def _optional_str(value: Any) -> Optional[str]:
  return value if isinstance(value, str) else None


# --- keywords and terms ----------------------------------------------------------------

ALL = '*'


class Keyword(NamedTuple):
  text: str                 # as given, lower-cased: 'nova x', '#novax'
  pattern: 're.Pattern'
  hashtag: Optional[str]    # the hashtag it matches ('novax'), for '#...' and one-word keywords


def parse_track(spec: Optional[str]) -> List[Keyword]:
  """'nova x,#NovaX,recall' -> keywords; an empty spec tracks everything (as '*')."""
  keywords = []
  for raw in (spec or '').split(','):
    text = ' '.join(raw.split()).lower()
    if not text or text in [k.text for k in keywords]:
      continue
    words = r'\s+'.join(re.escape(word) for word in text.split(' '))
    # No word character on either side: 'nova' matches "Nova!", #Nova and @nova (as
    # Twitter's track does) but not #NovaX, @nova_fan or supernova.
    pattern = re.compile(r'(?<!\w)%s(?!\w)' % words, re.IGNORECASE)
    hashtag = text[1:] if text.startswith('#') else (text if ' ' not in text else None)
    keywords.append(Keyword(text, pattern, hashtag))
  return keywords


def matching_keywords(tweet: Tweet, keywords: Sequence[Keyword]) -> List[str]:
  """The tracked keywords the tweet matches, at word boundaries in its full text or as a
  hashtag, case-insensitively; ['*'] when nothing is tracked."""
  if not keywords:
    return [ALL]
  tags = {tag.lower() for tag in tweet.hashtags}
  return [k.text for k in keywords
          if (k.hashtag is not None and k.hashtag in tags) or k.pattern.search(tweet.text)]


_URL = re.compile(r'https?://\S+|www\.\S+', re.IGNORECASE)
_TOKEN = re.compile(r"#\w+|[^\W\d_][\w'’-]*", re.UNICODE)
# Common English function words (and Twitter's own noise): no sentiment, no topic.
STOP_WORDS = frozenset('''
a about above after again against all am an and any are aren't as at be because been before
being below between both but by can can't cannot could couldn't did didn't do does doesn't
doing don't down during each few for from further get got had hadn't has hasn't have haven't
having he he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll
i'm i've if in into is isn't it it's its itself just let's like me more most mustn't my
myself no nor not now of off on once only or other ought our ours ourselves out over own
same shan't she she'd she'll she's should shouldn't so some such than that that's the their
theirs them themselves then there there's these they they'd they'll they're they've this
those through to too under until up very via was wasn't we we'd we'll we're we've were
weren't what what's when when's where where's which while who who's whom why why's will with
won't would wouldn't you you'd you'll you're you've your yours yourself yourselves rt amp
im dont cant its u ur also still one new really today yes yeah
'''.split())


def terms(text: str, exclude: Iterable[str] = ()) -> List[str]:
  """The words of a tweet worth counting: lower-cased, without URLs, @mentions, numbers,
  one-letter tokens and stop words; hashtags kept with their '#'. `exclude` drops the
  tracked keyword's own words, which every matching tweet holds."""
  skip = set(exclude)
  out = []
  for token in _TOKEN.findall(re.sub(r'@\w+', ' ', _URL.sub(' ', text))):
    token = token.lower().replace('’', "'").strip("'-")
    if len(token) < 2 or token in STOP_WORDS or token in skip:
      continue
    out.append(token)
  return out


def keyword_words(keyword: str) -> List[str]:
  """A keyword's own tokens, with and without '#', excluded from its top terms."""
  if keyword == ALL:
    return []
  words = keyword.split()
  return words + [w.lstrip('#') if w.startswith('#') else '#' + w for w in words]
