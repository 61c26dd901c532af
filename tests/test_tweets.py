"""Tweets in both API shapes, keyword matching, terms, local sentiment and the DoFns and
CombineFns of tweet_sentiment, called directly (no pipeline).

Fixtures follow the documented shapes: v1.1 statuses (streaming with `timestamp_ms` and
`extended_tweet`, REST with `full_text`) and v2 filtered-stream records (`data`,
`includes`, `matching_rules`). The same tweet is written in both shapes side by side.
"""
import copy
import itertools
import json

import pytest
from apache_beam.metrics.execution import MetricsContainer
from apache_beam.metrics.metricbase import MetricName
from apache_beam.runners.worker import statesampler
from apache_beam.utils import counters
from apache_beam.utils.timestamp import Timestamp

from transforms import sentiment, tweet_tables, tweets
from transforms.deadletter import RecordError
from transforms.records import Record
from transforms.sentiment import Analysis, LocalSentiment, UnsupportedLanguage, label
from transforms.tweet_tables import (DecodeTweets, MatchKeywords, SentimentFn, TopTermsFn,
                                     _per_keyword_scores, _per_keyword_terms, top_terms,
                                     tweet_row)
from transforms.tweets import (EMBEDDED, REBUILT, Tweet, fold_retweet, keyword_words,
                               matching_keywords,
                               notice_kind, parse_track, parse_tweet, terms)

JOB = 'tweet_sentiment'

ID = '1050118621198921728'
ID_AS_DOUBLE = 1050118621198921700          # what a double makes of ID: id_str wins
USER_ID = '6253282'
RT_ID = '1050128943101247488'
RT_USER_ID = '42'
TEXT = 'Nova launch went great! #NovaX \U0001F680'
MICROS = 1539202764211000                   # Wed Oct 10 20:19:24 UTC 2018: created_at
# (whole seconds) refined by the snowflake id's own millisecond
RT_MICROS = 1539205200456000                # 2018-10-10T21:00:00.456Z

# One tweet, v1.1 streaming shape (no timestamp_ms: created_at only, whole seconds).
V1 = {
    'created_at': 'Wed Oct 10 20:19:24 +0000 2018',
    'id': ID_AS_DOUBLE,
    'id_str': ID,
    'text': TEXT,
    'truncated': False,
    'user': {'id': int(USER_ID), 'id_str': USER_ID, 'screen_name': 'nova_fan',
             'name': 'Nova Fan'},
    'lang': 'en',
    'entities': {'hashtags': [{'text': 'NovaX', 'indices': [24, 30]}], 'urls': [],
                 'user_mentions': []},
}
# The same tweet, v2 filtered-stream shape.
V2 = {
    'data': {
        'id': ID, 'text': TEXT, 'created_at': '2018-10-10T20:19:24.000Z',
        'author_id': USER_ID, 'lang': 'en', 'edit_history_tweet_ids': [ID],
        'entities': {'hashtags': [{'start': 24, 'end': 30, 'tag': 'NovaX'}]},
    },
    'includes': {'users': [{'id': USER_ID, 'username': 'nova_fan', 'name': 'Nova Fan'}]},
}
EXPECTED = Tweet(tweet_id=ID, micros=MICROS, user_id=USER_ID, user_name='nova_fan',
                 lang='en', text=TEXT, hashtags=('NovaX',))

LONG_TEXT = ('Nova launch went great! Stage separation was clean, the fairing came back '
             'in one piece & the crowd at the cape went wild. Next stop: orbit. '
             '#NovaX #Launch')


def record(value):
  return Record(payload=json.dumps(value), source='tweets.json', line=1, value=value)


def tweet(text, hashtags=(), lang='en'):
  return Tweet('1', MICROS, None, None, lang, text, tuple(hashtags))


# --- both shapes -------------------------------------------------------------------------

def test_v1_and_v2_give_the_same_tweet():
  assert parse_tweet(V1) == EXPECTED
  assert parse_tweet(V2) == EXPECTED
  assert parse_tweet(json.loads(json.dumps(V1))) == parse_tweet(json.loads(json.dumps(V2)))


def test_plain_tweet_defaults():
  t = parse_tweet(V1)
  assert (t.is_retweet, t.original_id, t.rules, t.original) == (False, None, (), None)
  assert fold_retweet(t) is t


def test_id_str_is_authoritative_over_a_mangled_id():
  assert parse_tweet(dict(V1, id=ID_AS_DOUBLE)).tweet_id == ID
  no_str = {k: v for k, v in V1.items() if k != 'id_str'}
  assert parse_tweet(dict(no_str, id=int(ID))).tweet_id == ID
  assert parse_tweet(dict(V1, id_str='', id=int(ID))).tweet_id == ID
  assert parse_tweet(dict(V1, id_str=None, id=7)).tweet_id == '7'


def test_v2_numeric_ids_become_strings():
  v2 = copy.deepcopy(V2)
  v2['data']['id'] = int(ID)
  assert parse_tweet(v2).tweet_id == ID


def test_v2_user_name_missing_from_includes():
  v2 = copy.deepcopy(V2)
  del v2['includes']
  assert parse_tweet(v2) == EXPECTED._replace(user_name=None)


def test_v1_user_missing():
  v1 = {k: v for k, v in V1.items() if k != 'user'}
  assert parse_tweet(v1) == EXPECTED._replace(user_id=None, user_name=None)


def test_lang_und_is_kept():
  v1 = dict(V1, lang='und')
  v2 = copy.deepcopy(V2)
  v2['data']['lang'] = 'und'
  assert parse_tweet(v1).lang == parse_tweet(v2).lang == 'und'


# --- full text -----------------------------------------------------------------------------

def test_v1_truncated_streaming_tweet_uses_extended_tweet():
  status = dict(V1, truncated=True,
                text='Nova launch went great! Stage separation was clean, the fairing came '
                     'back in one piece &amp;… https://t.co/abcDEF1234',
                entities={'hashtags': [], 'urls': [{'url': 'https://t.co/abcDEF1234'}]},
                extended_tweet={
                    'full_text': LONG_TEXT.replace('&', '&amp;'),
                    'display_text_range': [0, 160],
                    'entities': {'hashtags': [{'text': 'NovaX'}, {'text': 'Launch'}]}})
  t = parse_tweet(status)
  assert t.text == LONG_TEXT
  assert t.hashtags == ('NovaX', 'Launch')


def test_v1_extended_tweet_without_entities_keeps_the_status_hashtags():
  status = dict(V1, truncated=True, extended_tweet={'full_text': LONG_TEXT})
  assert parse_tweet(status).hashtags == ('NovaX',)
  assert parse_tweet(status).text == LONG_TEXT


def test_v1_rest_full_text():
  status = {k: v for k, v in V1.items() if k != 'text'}
  status['full_text'] = LONG_TEXT
  assert parse_tweet(status).text == LONG_TEXT
  # full_text wins over a (truncated) text when both are there.
  assert parse_tweet(dict(status, text='Nova launch…')).text == LONG_TEXT


def test_v1_html_entities_are_unescaped():
  escaped = 'Fuel &lt;3 &amp; LOX &gt; kerosene, not &amp;amp; #NovaX'
  t = parse_tweet(dict(V1, text=escaped))
  assert t.text == 'Fuel <3 & LOX > kerosene, not &amp; #NovaX'
  extended = parse_tweet(dict(V1, extended_tweet={'full_text': escaped}))
  assert extended.text == t.text


def test_v2_note_tweet_is_the_full_text():
  v2 = copy.deepcopy(V2)
  v2['data']['text'] = 'Nova launch went great! Stage separation was clean, the fairing… '
  v2['data']['note_tweet'] = {
      'text': LONG_TEXT,
      'entities': {'hashtags': [{'start': 150, 'end': 156, 'tag': 'NovaX'},
                                {'start': 157, 'end': 164, 'tag': 'Launch'}]}}
  t = parse_tweet(v2)
  assert t.text == LONG_TEXT
  assert t.hashtags == ('NovaX', 'Launch')
  # A note_tweet without its own entities: the data's hashtags.
  del v2['data']['note_tweet']['entities']
  assert parse_tweet(v2).hashtags == ('NovaX',)


def test_unicode_text_survives_both_shapes():
  text = 'Ünïcode Straße 日本語 \U0001F680 “quoted” — done'
  v1 = dict(V1, text=text)
  v2 = copy.deepcopy(V2)
  v2['data']['text'] = text
  assert parse_tweet(json.loads(json.dumps(v1))).text == text
  assert parse_tweet(json.loads(json.dumps(v2, ensure_ascii=False))).text == text


def test_v2_html_entities_are_unescaped_like_v1():
  escaped = 'Fuel &lt;3 &amp; LOX &gt; kerosene'
  v1 = dict(V1, text=escaped)
  v2 = copy.deepcopy(V2)
  v2['data']['text'] = escaped
  assert parse_tweet(v2).text == parse_tweet(v1).text == 'Fuel <3 & LOX > kerosene'


# --- time ----------------------------------------------------------------------------------

def test_v1_timestamp_ms_is_preferred_over_created_at():
  assert parse_tweet(dict(V1, timestamp_ms='1539202764123')).micros == 1539202764123000
  assert parse_tweet(V1).micros == MICROS


def test_v1_created_at_with_an_offset():
  assert parse_tweet(dict(V1, created_at='Wed Oct 10 22:19:24 +0200 2018')).micros == MICROS


def test_v2_created_at_fraction_and_offset():
  v2 = copy.deepcopy(V2)
  v2['data']['created_at'] = '2018-10-10T20:19:24.123Z'
  assert parse_tweet(v2).micros == 1539202764123000
  v2['data']['created_at'] = '2018-10-10T22:19:24.5+02:00'
  assert parse_tweet(v2).micros == 1539202764500000


def test_v1_timestamp_ms_and_v2_milliseconds_agree():
  v1 = dict(V1, timestamp_ms='1539202764123')
  v2 = copy.deepcopy(V2)
  v2['data']['created_at'] = '2018-10-10T20:19:24.123Z'
  assert parse_tweet(v1) == parse_tweet(v2)


# --- retweets, quotes, replies ---------------------------------------------------------------

V1_ORIGINAL = dict(V1, truncated=True, text='Nova launch went great! Stage separation… '
                   'https://t.co/abcDEF1234',
                   extended_tweet={'full_text': LONG_TEXT.replace('&', '&amp;'),
                                   'entities': {'hashtags': [{'text': 'NovaX'},
                                                             {'text': 'Launch'}]}})
V1_RETWEET = {
    'created_at': 'Wed Oct 10 21:00:00 +0000 2018',
    'id': int(RT_ID), 'id_str': RT_ID,
    'text': 'RT @nova_fan: Nova launch went great! Stage separation was clean, the fairing '
            'came back in one…',
    'truncated': False,
    'user': {'id': 42, 'id_str': RT_USER_ID, 'screen_name': 'rt_user'},
    'lang': 'en',
    'timestamp_ms': '1539205200456',
    'entities': {'hashtags': [], 'user_mentions': [{'screen_name': 'nova_fan'}]},
    'retweeted_status': V1_ORIGINAL,
}
ORIGINAL = Tweet(ID, MICROS, USER_ID, 'nova_fan', 'en', LONG_TEXT, ('NovaX', 'Launch'))
EMBEDDED_ORIGINAL = ORIGINAL._replace(source=EMBEDDED)  # a copy from inside a retweet


def v2_retweet(expanded=True, rules=None):
  record = {
      'data': {
          'id': RT_ID, 'author_id': RT_USER_ID, 'lang': 'en',
          'text': 'RT @nova_fan: Nova launch went great! Stage separation was clean… #NovaX',
          'created_at': '2018-10-10T21:00:00.456Z',
          'entities': {'hashtags': [{'tag': 'NovaX'}],
                       'mentions': [{'username': 'nova_fan', 'id': USER_ID}]},
          'referenced_tweets': [{'type': 'retweeted', 'id': ID}],
      },
      'includes': {'users': [{'id': RT_USER_ID, 'username': 'rt_user', 'name': 'RT'},
                             {'id': USER_ID, 'username': 'nova_fan', 'name': 'Nova Fan'}]},
  }
  if expanded:
    record['includes']['tweets'] = [{
        'id': ID, 'author_id': USER_ID, 'lang': 'en', 'created_at': '2018-10-10T20:19:24Z',
        'text': 'Nova launch went great! Stage separation was clean, the fairing…',
        'note_tweet': {'text': LONG_TEXT,
                       'entities': {'hashtags': [{'tag': 'NovaX'}, {'tag': 'Launch'}]}}}]
  if rules is not None:
    record['matching_rules'] = rules
  return record


def test_v1_retweet_folds_into_its_original():
  assert fold_retweet(parse_tweet(V1_RETWEET)) == EMBEDDED_ORIGINAL
  assert parse_tweet(V1_ORIGINAL) == ORIGINAL


def test_v1_retweet_as_its_own_row():
  assert parse_tweet(V1_RETWEET) == Tweet(
      RT_ID, RT_MICROS, RT_USER_ID, 'rt_user', 'en', LONG_TEXT, ('NovaX', 'Launch'),
      is_retweet=True, original_id=ID, original=ORIGINAL)


def test_v2_retweet_folds_into_its_original():
  assert fold_retweet(parse_tweet(v2_retweet())) == EMBEDDED_ORIGINAL


def test_v2_retweet_as_its_own_row():
  assert parse_tweet(v2_retweet()) == Tweet(
      RT_ID, RT_MICROS, RT_USER_ID, 'rt_user', 'en', LONG_TEXT, ('NovaX', 'Launch'),
      is_retweet=True, original_id=ID, original=ORIGINAL)


def test_v1_and_v2_retweets_agree():
  assert parse_tweet(V1_RETWEET) == parse_tweet(v2_retweet())
  assert fold_retweet(parse_tweet(V1_RETWEET)) == fold_retweet(parse_tweet(v2_retweet()))


def test_v2_retweet_keeps_the_rules_when_folded():
  rules = [{'id': '1', 'tag': 'nova'}]
  assert fold_retweet(parse_tweet(v2_retweet(rules=rules))) == \
      EMBEDDED_ORIGINAL._replace(rules=(('1', 'nova'),))


def test_v2_retweet_of_an_original_not_in_includes():
  t = parse_tweet(v2_retweet(expanded=False, rules=[{'id': '9', 'tag': None}]))
  shown = 'Nova launch went great! Stage separation was clean… #NovaX'
  assert t == Tweet(RT_ID, RT_MICROS, RT_USER_ID, 'rt_user', 'en', shown, ('NovaX',),
                    is_retweet=True, original_id=ID, rules=(('9', None),), source=REBUILT)
  # Rebuilt: the original's id, its snowflake time, the retweet's text without 'RT @x: '.
  assert fold_retweet(t) == Tweet(ID, MICROS, None, None, 'en', shown, ('NovaX',),
                                  rules=(('9', None),), source=REBUILT)


def test_v2_referenced_id_as_a_number():
  record = v2_retweet()
  record['data']['referenced_tweets'] = [{'type': 'retweeted', 'id': int(ID)}]
  assert fold_retweet(parse_tweet(record)) == EMBEDDED_ORIGINAL


def test_quote_tweets_and_replies_are_not_retweets():
  v1_quote = dict(V1, id_str=RT_ID, id=int(RT_ID), text='Look at this launch',
                  is_quote_status=True, quoted_status_id_str=ID, quoted_status=V1_ORIGINAL)
  v1_reply = dict(V1, id_str=RT_ID, id=int(RT_ID), text='@nova_fan congrats!',
                  in_reply_to_status_id_str=ID, in_reply_to_screen_name='nova_fan')
  for status in (v1_quote, v1_reply):
    t = parse_tweet(status)
    assert (t.tweet_id, t.text, t.is_retweet, t.original_id, t.original) == \
        (RT_ID, status['text'], False, None, None)
    assert fold_retweet(t) is t
  for kind, text in (('quoted', 'Look at this launch'), ('replied_to', '@nova_fan congrats!')):
    record = v2_retweet()
    record['data']['text'] = text
    record['data']['referenced_tweets'] = [{'type': kind, 'id': ID}]
    t = parse_tweet(record)
    assert t == Tweet(RT_ID, RT_MICROS, RT_USER_ID, 'rt_user', 'en', text, ('NovaX',))
    assert fold_retweet(t) is t


# --- matching rules, notices ---------------------------------------------------------------

def test_v2_rule_ids_too_big_for_a_double_stay_exact():
  raw = json.dumps(V2)[:-1] + (
      ', "matching_rules": [{"id": 1587968634561302530123, "tag": null}, '
      '{"id": "1587968634561302531", "tag": "nova"}, {"id": 9007199254740993, "tag": "x"}]}')
  t = parse_tweet(json.loads(raw))
  assert t.rules == (('1587968634561302530123', None), ('1587968634561302531', 'nova'),
                     ('9007199254740993', 'x'))
  assert t._replace(rules=()) == EXPECTED


NOTICES = [
    ('limit', {'limit': {'track': 1234, 'timestamp_ms': '1539202764123'}}),
    ('delete', {'delete': {'status': {'id': int(ID), 'id_str': ID, 'user_id': 6253282,
                                      'user_id_str': USER_ID},
                           'timestamp_ms': '1539202764123'}}),
    ('scrub_geo', {'scrub_geo': {'user_id': 6253282, 'user_id_str': USER_ID,
                                 'up_to_status_id': int(ID), 'up_to_status_id_str': ID}}),
    ('status_withheld', {'status_withheld': {'id': int(ID), 'user_id': 6253282,
                                             'withheld_in_countries': ['DE']}}),
    ('user_withheld', {'user_withheld': {'id': 6253282, 'withheld_in_countries': ['DE']}}),
    ('disconnect', {'disconnect': {'code': 4, 'stream_name': 'nova-stream',
                                   'reason': 'duplicate stream'}}),
    ('warning', {'warning': {'code': 'FALLING_BEHIND', 'message': 'Your connection is '
                             'falling behind.', 'percent_full': 60}}),
    ('event', {'event': 'favorite', 'source': {'id_str': '1'}, 'target': {'id_str': '2'},
               'created_at': 'Wed Oct 10 20:19:24 +0000 2018'}),
    ('friends', {'friends': [1, 2, 3]}),
    ('direct_message', {'direct_message': {'id_str': '5', 'text': 'hi'}}),
    ('errors', {'errors': [{
        'title': 'operational-disconnect', 'disconnect_type': 'UpstreamOperationalDisconnect',
        'detail': 'This stream has been disconnected upstream for operational reasons.',
        'type': 'https://api.twitter.com/2/problems/operational-disconnect'}]}),
]


@pytest.mark.parametrize('kind,value', NOTICES, ids=[k for k, _ in NOTICES])
def test_notice_kinds(kind, value):
  assert notice_kind(value) == kind


def test_every_notice_key_is_covered():
  assert {k for k, _ in NOTICES} == set(tweets.NOTICE_KEYS) | {'errors'}


def test_tweets_are_not_notices():
  assert notice_kind(V1) is None
  assert notice_kind(V2) is None
  assert notice_kind(V1_RETWEET) is None
  # v2 tweet with partial errors (an expansion it could not fill): still a tweet.
  assert notice_kind(dict(V2, errors=[{'title': 'Not Found Error'}])) is None


# --- bad records ---------------------------------------------------------------------------

BAD = [
    ('not an object', ['a', 'list']),
    ('a string', 'just text'),
    ('no id', {k: v for k, v in V1.items() if k not in ('id', 'id_str')}),
    ('id not digits', dict(V1, id_str='abc', id=None)),
    ('negative id', dict(V1, id_str=None, id=-5)),
    ('bool id', dict(V1, id_str=None, id=True)),
    ('v1 text not a string', dict(V1, text=12345)),
    ('v1 text missing', {k: v for k, v in V1.items() if k != 'text'}),
    ('v1 full_text null', dict(V1, extended_tweet={'full_text': None})),
    ('v1 created_at garbage', dict(V1, created_at='yesterday')),
    ('v1 created_at ISO', dict(V1, created_at='2018-10-10T20:19:24Z')),
    ('v1 created_at missing', {k: v for k, v in V1.items() if k != 'created_at'}),
    ('v1 timestamp_ms garbage', dict(V1, timestamp_ms='soon')),
    ('v1 timestamp_ms empty', dict(V1, timestamp_ms='')),
    ('v1 timestamp_ms decimal', dict(V1, timestamp_ms='1539202764123.5')),
    ('v1 retweeted_status not an object', dict(V1_RETWEET, retweeted_status='x')),
    ('v1 bad original', dict(V1_RETWEET, retweeted_status={'text': 'no id'})),
    ('v2 data a list', {'data': [V2['data']]}),
    ('v2 data null', {'data': None}),
    ('v2 no id', {'data': {k: v for k, v in V2['data'].items() if k != 'id'}}),
    ('v2 text null', {'data': dict(V2['data'], text=None)}),
    ('v2 created_at garbage', {'data': dict(V2['data'], created_at='2018-13-45T99:00:00Z')}),
    ('v2 created_at v1 style', {'data': dict(V2['data'], created_at=V1['created_at'])}),
    ('v2 created_at missing',
     {'data': {k: v for k, v in V2['data'].items() if k != 'created_at'}}),
    ('v2 retweeted id missing',
     {'data': dict(V2['data'], referenced_tweets=[{'type': 'retweeted'}])}),
]


@pytest.mark.parametrize('name,value', BAD, ids=[n for n, _ in BAD])
def test_bad_records_raise_record_error(name, value):
  with pytest.raises(RecordError):
    parse_tweet(value)


def test_non_ascii_digits_are_not_an_id():
  with pytest.raises(RecordError):
    parse_tweet(dict(V1, id_str='¹²³', id=None))


# --- keywords ------------------------------------------------------------------------------

def test_parse_track():
  keywords = parse_track('  Nova    X , ,#NovaX,recall,')
  assert [(k.text, k.hashtag) for k in keywords] == \
      [('nova x', None), ('#novax', 'novax'), ('recall', 'recall')]
  assert parse_track(None) == parse_track('') == parse_track(' , ,') == []


def test_no_track_matches_everything_under_star():
  assert matching_keywords(tweet('anything at all'), []) == ['*']
  assert matching_keywords(tweet(''), parse_track(None)) == ['*']


def match(spec, text, hashtags=()):
  return matching_keywords(tweet(text, hashtags), parse_track(spec)) == \
      [k.text for k in parse_track(spec)]


@pytest.mark.parametrize('text,hashtags,matched', [
    ('Nova launches today', (), True),
    ('NOVA!', (), True),
    ('(nova)', (), True),
    ('go nova.', (), True),
    ('“Nova”, again', (), True),
    ("nova's engines", (), True),
    ('Café Nova\U0001F680', (), True),
    ('hashtag only', ('Nova',), True),
    ('#Nova rocks', ('Nova',), True),
    ('#NovaX rocks', ('NovaX',), False),
    ('#NovaX rocks', (), False),
    ('novaxyz', (), False),
    ('supernova', (), False),
    ('@nova hi', (), True),            # Twitter's track matches mentions too
    ('@Nova_fan hi', (), False),
    ('no-vak', (), False),
])
def test_plain_keyword(text, hashtags, matched):
  assert match('nova', text, hashtags) is matched


@pytest.mark.parametrize('text,hashtags,matched', [
    ('go', ('NovaX',), True),
    ('go', ('novax',), True),
    ('a #NovaX.', (), True),
    ('#novax!', (), True),
    ('novax rocks', (), False),
    ('NovaX rocks', (), False),
    ('#NovaXyz', (), False),
    ('go', ('NovaXyz',), False),
    ('go', ('Nova',), False),
])
def test_hashtag_keyword(text, hashtags, matched):
  assert match('#NovaX', text, hashtags) is matched


@pytest.mark.parametrize('text,hashtags,matched', [
    ('Nova X launch', (), True),
    ('nova   x', (), True),
    ('nova\nx', (), True),
    ('nova\tX', (), True),
    ('nova\u00a0x', (), True),      # no-break space is whitespace
    ('NOVA X!', (), True),
    ('nova xyz', (), False),
    ('nova-x', (), False),
    ('novax', (), False),
    ('supernova x', (), False),
    ('go', ('NovaX',), False),
])
def test_phrase_keyword(text, hashtags, matched):
  assert match('nova  X', text, hashtags) is matched


def test_unicode_and_special_keywords():
  assert match('Café', 'CAFÉ open')
  assert not match('café', 'cafés open')
  assert match('münchen', 'MÜNCHEN calling')
  assert match('c++', 'I like C++.')
  assert not match('a.b', 'axb')           # regex characters are literal
  assert match('a.b', 'see a.b now')


def test_several_keywords_in_track_order():
  keywords = parse_track('recall,#NovaX,nova x,nova,launch')
  t = tweet('Nova X recall? #NovaX', ('NovaX',))
  assert matching_keywords(t, keywords) == ['recall', '#novax', 'nova x', 'nova']
  assert matching_keywords(tweet('nothing here'), keywords) == []


def test_keywords_match_the_full_text_of_a_folded_retweet():
  keywords = parse_track('orbit')   # only in the original's full text
  assert matching_keywords(fold_retweet(parse_tweet(V1_RETWEET)), keywords) == ['orbit']
  assert matching_keywords(parse_tweet(V1_RETWEET), keywords) == ['orbit']


def test_duplicate_keywords_count_once():
  assert matching_keywords(tweet('Nova is up'), parse_track('nova,NOVA, Nova')) == ['nova']


# --- terms ---------------------------------------------------------------------------------

def test_terms():
  text = ("Hello @bob: the NASA #NovaX launch 2024 is go! http://t.co/x www.nova.org x 3d "
          "Don’t 'great' covid19 100k HTTPS://T.CO/Y")
  assert terms(text) == ['hello', 'nasa', '#novax', 'launch', 'go', 'great', 'covid19']


def test_terms_unicode_apostrophes_and_repeats():
  assert terms('Ünïcode Straße rocket’s launch launch') == \
      ['ünïcode', 'straße', "rocket's", 'launch', 'launch']
  assert terms('RT @nova: it’s &amp; I’m') == []


def test_terms_exclude_the_keyword_words():
  assert keyword_words('*') == []
  assert keyword_words('nova x') == ['nova', 'x', '#nova', '#x']
  assert keyword_words('nova') == ['nova', '#nova']
  assert keyword_words('#novax') == ['#novax', 'novax']
  assert terms('NovaX #NovaX launch nova', exclude=keyword_words('#novax')) == \
      ['launch', 'nova']


def test_terms_drop_urls_with_an_at_sign():
  assert terms('read https://medium.com/@nova/launch-day now') == ['read']


def test_top_terms_rank_by_count_then_term():
  assert top_terms({'b': 2, 'a': 2, 'c': 3, 'd': 1}, 3) == [
      {'rank': 1, 'term': 'c', 'count': 3},
      {'rank': 2, 'term': 'a', 'count': 2},
      {'rank': 3, 'term': 'b', 'count': 2}]
  assert top_terms({}, 5) == []
  assert top_terms({'a': 1}, 0) == []


# --- sentiment -----------------------------------------------------------------------------

@pytest.mark.parametrize('score,expected', [
    (0.25, 'positive'), (0.9, 'positive'), (0.2499, 'neutral'), (0.0, 'neutral'),
    (-0.2499, 'neutral'), (-0.25, 'negative'), (-1.0, 'negative')])
def test_label_default_thresholds(score, expected):
  assert label(score) == expected


def test_label_custom_thresholds():
  assert label(0.4, 0.5, -0.5) == 'neutral'
  assert label(0.5, 0.5, -0.5) == 'positive'
  assert label(-0.5, 0.5, -0.5) == 'negative'
  assert label(0.1, 0.1, -0.1) == 'positive'


@pytest.fixture(scope='module')
def local():
  backend = LocalSentiment()
  backend.setup()
  return backend


# VADER values observed with vaderSentiment 3.3.2 (a regression check of the mapping):
# score = compound of the whole text; magnitude = sum of the sentences' |compound|:
#   'I love this launch!' 0.6696, 'It is great.' 0.6249            -> 1.2945
#   'This is terrible.' -0.4767, 'I hate it.' -0.5719, 'Worst day ever!' -0.6588 -> 1.7074
#   'Great launch!' 0.6588, 'Awful weather.' -0.4588                -> 1.1176
#   'Good.' 0.4404, 'Bad.' -0.5423 (split on the newline)           -> 0.9827
@pytest.mark.parametrize('text,score,magnitude,terms_', [
    ('I love this launch! It is great.', 0.8622, 1.2945, ('love', 'launch', 'great')),
    ('This is terrible. I hate it. Worst day ever!', -0.9041, 1.7074,
     ('terrible', 'hate', 'worst', 'day', 'ever')),
    ('Great launch! Awful weather.', 0.3382, 1.1176, ('great', 'launch', 'awful', 'weather')),
    ('Good.\nBad.', -0.1531, 0.9827, ('good', 'bad')),
    ('The rocket launched at noon.', 0.128, 0.128, ('rocket', 'launched', 'noon')),
    ('#NovaX \U0001F680', 0.0, 0.0, ('#novax',)),
    ('', 0.0, 0.0, ()),
])
def test_local_sentiment_values(local, text, score, magnitude, terms_):
  assert local.analyze([(text, 'en')]) == [Analysis(score, magnitude, terms_)]


def test_local_sentiment_labels(local):
  results = local.analyze([('I love this launch! It is great.', 'en'),
                           ('This is terrible. I hate it. Worst day ever!', 'en'),
                           ('The rocket launched at noon.', 'en')])
  assert [label(r.score) for r in results] == ['positive', 'negative', 'neutral']


def test_local_sentiment_languages(local):
  text = 'I love this launch! It is great.'
  langs = [None, 'en', 'und', 'qme', 'qht', 'qam', 'zxx', 'fr', 'ja', 'es']
  results = local.analyze([(text, lang) for lang in langs])
  for lang, result in zip(langs[:7], results[:7], strict=True):
    assert result == Analysis(0.8622, 1.2945, ('love', 'launch', 'great')), lang
  for lang, result in zip(langs[7:], results[7:], strict=True):
    assert isinstance(result, UnsupportedLanguage), lang   # returned, not raised
    assert repr(lang) in str(result)


def test_local_sentiment_without_terms():
  backend = LocalSentiment(entities='none')
  backend.setup()
  assert backend.analyze([('Great launch! Awful weather.', 'en')]) == \
      [Analysis(0.3382, 1.1176, None)]


def test_undetermined_codes():
  assert {'und', 'qme', 'qht', 'qam', 'zxx'} <= sentiment.UNDETERMINED


# --- DoFns ---------------------------------------------------------------------------------

@pytest.fixture
def metrics():
  """Counters the DoFns increment, read back by name (`metrics('filtered')`)."""
  container = MetricsContainer('step')
  sampler = statesampler.StateSampler('', counters.CounterFactory())
  statesampler.set_current_tracker(sampler)
  state = sampler.scoped_state('step', 'process', metrics_container=container)
  sampler.start()
  try:
    with state:
      yield lambda name: container.get_counter(MetricName(JOB, name)).get_cumulative()
  finally:
    sampler.stop()
    statesampler.set_current_tracker(None)


def decode(value, include_retweets=False):
  return list(DecodeTweets(JOB, include_retweets).process(record(value)))


def test_decode_tweets_timestamps_and_keys(metrics):
  value = dict(V1, timestamp_ms='1539202764123')
  [out] = decode(value)
  assert out.timestamp == Timestamp(micros=1539202764123000)
  key, (rec, t) = out.value
  assert key == ID
  assert rec == record(value) and rec.value is value   # the record travels unchanged
  assert t == EXPECTED._replace(micros=1539202764123000)
  [out] = decode(V2)
  assert out.value[0] == ID and out.value[1][1] == EXPECTED
  assert out.timestamp == Timestamp(micros=MICROS)
  assert metrics('filtered') == 0


def test_decode_folds_retweets_by_default(metrics):
  folded = [(decode(V1_ORIGINAL), ORIGINAL), (decode(V1_RETWEET), EMBEDDED_ORIGINAL),
            (decode(v2_retweet()), EMBEDDED_ORIGINAL)]
  for [out], expected in folded:
    assert out.value[0] == ID
    assert out.value[1][1] == expected
    assert out.timestamp == Timestamp(micros=MICROS)
  assert metrics('filtered') == 0


def test_decode_keeps_retweets_when_asked():
  [out] = decode(V1_RETWEET, include_retweets=True)
  assert out.value[0] == RT_ID
  assert out.value[1][1] == parse_tweet(V1_RETWEET)
  assert out.timestamp == Timestamp(micros=RT_MICROS)
  [out] = decode(v2_retweet(expanded=False), include_retweets=True)
  assert out.value[0] == RT_ID and out.value[1][1].original_id == ID


def test_decode_counts_every_notice_as_filtered(metrics):
  for _, value in NOTICES:
    assert decode(value) == []
  assert metrics('filtered') == len(NOTICES)
  assert metrics('filtered_notices') == len(NOTICES)


def test_match_keywords_language_filter(metrics):
  rec = record(V1)

  def select(tweet, languages):
    return list(MatchKeywords(JOB, [], languages).process((rec, tweet)))

  assert len(select(EXPECTED, ['en', 'und'])) == 1
  assert select(EXPECTED._replace(lang='fr'), ['en', 'und']) == []
  assert len(select(EXPECTED._replace(lang=None), ['und'])) == 1   # no lang counts as 'und'
  assert select(EXPECTED._replace(lang=None), ['en']) == []
  assert len(select(EXPECTED._replace(lang='fr'), [])) == 1        # no --languages: all
  assert metrics('filtered') == 2
  assert metrics('filtered_language') == 2


def test_decode_raises_record_error_for_bad_records():
  for _, value in BAD:
    with pytest.raises(RecordError):
      decode(value)


def test_match_keywords(metrics):
  rec = record(V1)
  fn = MatchKeywords(JOB, parse_track('#NovaX,orbit,nova'))
  assert list(fn.process((rec, EXPECTED))) == [(rec, EXPECTED, ['#novax', 'nova'])]
  assert list(fn.process((rec, EXPECTED._replace(text='nothing', hashtags=())))) == []
  assert metrics('filtered') == 1
  everything = MatchKeywords(JOB, [])
  assert list(everything.process((rec, EXPECTED))) == [(rec, EXPECTED, ['*'])]
  assert metrics('filtered') == 1


# --- rows and aggregates -------------------------------------------------------------------

def test_tweet_row():
  t = parse_tweet(dict(V1, timestamp_ms='1539202764123'))
  row = tweet_row(t, ['#novax', 'nova'], Analysis(0.8622, 1.2945, ('love',)))
  assert row == {
      'created_at': '2018-10-10T20:19:24.123000Z', 'tweet_id': ID, 'user_id': USER_ID,
      'user_name': 'nova_fan', 'lang': 'en', 'text': TEXT, 'keywords': ['#novax', 'nova'],
      'is_retweet': False, 'retweet_of': None, 'sentiment_score': 0.8622,
      'sentiment_magnitude': 1.2945, 'sentiment_label': 'positive'}


def test_tweet_row_for_a_retweet_and_thresholds():
  t = parse_tweet(V1_RETWEET)
  keywords = ('orbit',)
  row = tweet_row(t, keywords, Analysis(0.3382, 1.1176, None), 0.5, -0.5)
  assert row['keywords'] == ['orbit'] and isinstance(row['keywords'], list)
  assert (row['tweet_id'], row['is_retweet'], row['retweet_of']) == (RT_ID, True, ID)
  assert (row['user_name'], row['text']) == ('rt_user', LONG_TEXT)
  assert row['created_at'] == '2018-10-10T21:00:00.456000Z'
  assert row['sentiment_label'] == 'neutral'


def test_per_keyword_scores():
  row = {'keywords': ['a', 'b'], 'sentiment_score': 0.5, 'sentiment_magnitude': 1.0,
         'sentiment_label': 'positive'}
  assert _per_keyword_scores((row, None)) == [('a', (0.5, 1.0, 'positive')),
                                              ('b', (0.5, 1.0, 'positive'))]


def test_per_keyword_terms():
  row = {'keywords': ['#novax', 'nova x', '*']}
  found = ('launch', '#novax', 'novax', 'nova', 'x', 'launch', 'orbit')
  assert _per_keyword_terms((row, found)) == [
      ('#novax', ['launch', 'nova', 'orbit', 'x']),
      ('nova x', ['#novax', 'launch', 'novax', 'orbit']),
      ('*', ['#novax', 'launch', 'nova', 'novax', 'orbit', 'x'])]
  assert _per_keyword_terms((row, None)) == []
  assert _per_keyword_terms(({'keywords': ['a']}, ())) == [('a', [])]


SCORED = [(0.8622, 1.2945, 'positive'), (-0.9041, 1.7074, 'negative'),
          (0.128, 0.128, 'neutral'), (0.3382, 1.1176, 'positive'),
          (-0.1531, 0.9827, 'neutral'), (0.0, 0.0, 'neutral'), (-0.25, 0.5, 'negative')]


def accumulate(fn, inputs):
  acc = fn.create_accumulator()
  for value in inputs:
    acc = fn.add_input(acc, value)
  return acc


def partials(fn, inputs, cuts):
  bounds = [0, *cuts, len(inputs)]
  return [accumulate(fn, inputs[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


def test_sentiment_fn():
  fn = SentimentFn()
  out = fn.extract_output(accumulate(fn, SCORED))
  assert {k: out[k] for k in ('tweets', 'positive', 'negative', 'neutral')} == \
      {'tweets': 7, 'positive': 2, 'negative': 2, 'neutral': 3}
  assert out['avg_score'] == round(0.0212 / 7, 9)        # rounded to 9 places
  assert out['avg_magnitude'] == round(5.7302 / 7, 9)
  assert fn.extract_output(fn.create_accumulator()) == {
      'tweets': 0, 'avg_score': 0.0, 'avg_magnitude': 0.0,
      'positive': 0, 'negative': 0, 'neutral': 0}


def test_sentiment_fn_merge_in_any_order():
  fn = SentimentFn()
  whole = fn.extract_output(accumulate(fn, SCORED))
  for cuts in ([2, 5], [1, 3, 6], [0, 7], [3]):
    for order in itertools.permutations(partials(fn, SCORED, cuts)):
      out = fn.extract_output(fn.merge_accumulators([list(a) for a in order]))
      # Counts exactly; float sums may differ in the last bit with the order of addition.
      assert out == whole          # rounding makes the merge order irrelevant
      assert {k: out[k] for k in ('tweets', 'positive', 'negative', 'neutral')} == \
          {k: whole[k] for k in ('tweets', 'positive', 'negative', 'neutral')}
  # Merging merges, and merging in the empty accumulator, changes nothing.
  a, b, c = partials(fn, SCORED, [2, 5])
  nested = fn.merge_accumulators([fn.merge_accumulators([c, fn.create_accumulator()]),
                                  fn.merge_accumulators([b, a])])
  assert fn.extract_output(nested) == whole


TERM_SETS = [['launch', 'orbit'], ['launch', 'nova'], ['#novax', 'launch'], ['orbit'],
             ['nova', 'orbit', 'zeta'], ['alpha'], ['launch']]


def test_top_terms_fn():
  fn = TopTermsFn(3)
  assert fn.extract_output(accumulate(fn, TERM_SETS)) == [
      {'rank': 1, 'term': 'launch', 'count': 4},
      {'rank': 2, 'term': 'orbit', 'count': 3},
      {'rank': 3, 'term': 'nova', 'count': 2}]
  assert fn.extract_output(fn.create_accumulator()) == []


def test_top_terms_fn_merge_in_any_order():
  fn = TopTermsFn(5)
  whole = fn.extract_output(accumulate(fn, TERM_SETS))
  for cuts in ([2, 5], [1, 3, 6], [0, 7], [3]):
    for order in itertools.permutations(partials(fn, TERM_SETS, cuts)):
      merged = fn.merge_accumulators([a.copy() for a in order])
      assert fn.extract_output(merged) == whole
  a, b, c = partials(fn, TERM_SETS, [2, 5])
  nested = fn.merge_accumulators([fn.merge_accumulators([c, fn.create_accumulator()]),
                                  fn.merge_accumulators([b, a])])
  assert fn.extract_output(nested) == whole


def test_terms_count_once_per_tweet_through_per_keyword_terms():
  fn = TopTermsFn(10)
  rows = [({'keywords': ['nova']}, ('launch', 'launch', 'nova', 'orbit')),
          ({'keywords': ['nova']}, ('launch', 'nova'))]
  acc = fn.create_accumulator()
  for row in rows:
    for keyword, found in _per_keyword_terms(row):
      assert keyword == 'nova'
      acc = fn.add_input(acc, found)
  assert fn.extract_output(acc) == [{'rank': 1, 'term': 'launch', 'count': 2},
                                    {'rank': 2, 'term': 'orbit', 'count': 1}]


def test_module_constants():
  assert tweet_tables.ERRORS == 'errors'
  assert tweets.ALL == '*'
