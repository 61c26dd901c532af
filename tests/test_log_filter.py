"""Log-based metric filters, checked against what the Logging query language documents.

Trees are compared through their canonical text (every value quoted, every AND/OR group that
sits inside another parenthesised), so a precedence test reads as the grouping it expects.
"""
import itertools
import pickle

import pytest

from transforms.log_filter import FilterError, parse_filter, parse_metric

REQUEST = {
    'logName': 'projects/p/logs/struct_log',
    'severity': 'ERROR',
    'timestamp': '2024-05-01T12:00:00.123456Z',
    'insertId': 'abc-1',
    'httpRequest': {'requestMethod': 'GET', 'requestUrl': 'https://example.com/api/items?id=7',
                    'status': 503, 'responseSize': '577', 'latency': '0.005192s',
                    'remoteIp': '10.0.0.1', 'userAgent': 'curl/8.0'},
    'resource': {'type': 'k8s_container', 'labels': {'zone': 'europe-west1-b'}},
    'labels': {'k8s-pod/app': 'checkout', 'env': 'prod'},
    'jsonPayload': {'text': 'run -a --verbose', 'code': '007', 'sizes': [8.5, 9, 6],
                    'ok': True, 'nothing': None, 'user': {'name': 'Ada', 'tags': ['x', 'VIP']},
                    'items': [{'sku': 'A1'}, {'sku': 'B2'}]},
}
AUDIT = {'logName': 'projects/p/logs/cloudaudit.googleapis.com%2Factivity',
         'protoPayload': {'methodName': 'SetIamPolicy'}}


def tree(text):
  return str(parse_filter(text).root)


def match(text, entry=None):
  return parse_filter(text).matches(REQUEST if entry is None else entry)


def error(text):
  with pytest.raises(FilterError) as info:
    parse_filter(text)
  return str(info.value)


# --- parsing ------------------------------------------------------------------------------

def test_the_brief_examples_parse_and_match():
  assert tree('severity>=ERROR') == 'severity >= "ERROR"'
  assert tree('httpRequest.status>=500') == 'httpRequest.status >= "500"'
  assert tree('httpRequest.latency>1s') == 'httpRequest.latency > "1s"'
  assert tree('logName:"struct_log"') == 'logName : "struct_log"'
  assert tree('jsonPayload.text=~"-a"') == 'jsonPayload.text =~ "-a"'
  assert match('severity>=ERROR') and match('httpRequest.status>=500')
  assert not match('httpRequest.latency>1s')
  assert match('logName:"struct_log"') and match('jsonPayload.text=~"-a"')


def test_empty_filter_matches_everything():
  for text in ('', '   \n\t', '-- only a comment\n'):
    assert match(text) and match(text, {}) and tree(text) == ''


def test_filter_keeps_its_source():
  flt = parse_filter('severity >= ERROR  -- loud')
  assert str(flt) == flt.text == 'severity >= ERROR  -- loud'
  assert repr(flt) == "Filter('severity >= ERROR  -- loud')"


def test_spaces_comments_and_newlines_are_free():
  assert tree('severity>=ERROR\n-- why\nhttpRequest.status  >=  500') == \
      'severity >= "ERROR" AND httpRequest.status >= "500"'


def test_string_escapes():
  flt = parse_filter(r'jsonPayload.text="a \"b\" \\ c\td"')
  assert flt.root.text == 'a "b" \\ c\td'
  assert flt.matches({'jsonPayload': {'text': 'A "B" \\ C\tD'}})
  assert match(r'jsonPayload.text=~"\s-a\b"')  # unknown escapes stay for the regex
  assert match(r'jsonPayload.text=~"\\s-a"')


def test_canonical_text_parses_back_to_itself():
  for text in ('NOT severity<INFO OR -labels."k8s-pod/app":x jsonPayload.t=~"\\d"',
               '(jsonPayload.a=1 OR jsonPayload.b=2) jsonPayload.c:*',
               'jsonPayload.x = NULL_VALUE', 'resource.type = (a OR b)', 'protoPayload.@type:x'):
    assert tree(tree(text)) == tree(text)


def test_filters_pickle_for_beam():
  flt = parse_filter('severity>=WARNING jsonPayload.text=~"-a" logName:"struct_log"')
  again = pickle.loads(pickle.dumps(flt))
  assert again.matches(REQUEST) and str(again) == str(flt)


# --- precedence: NOT, then OR, then AND (juxtaposition is AND) ----------------------------

def test_documented_precedence_example():
  # "a OR NOT b AND NOT c OR d" is "(a OR (NOT b)) AND ((NOT c) OR d)" in Logging.
  text = ('jsonPayload.a=1 OR NOT jsonPayload.b=1 AND NOT jsonPayload.c=1 OR '
          'jsonPayload.d=1')
  assert tree(text) == ('(jsonPayload.a = "1" OR NOT jsonPayload.b = "1") AND '
                        '(NOT jsonPayload.c = "1" OR jsonPayload.d = "1")')
  flt = parse_filter(text)
  for a, b, c, d in itertools.product([0, 1], repeat=4):
    entry = {'jsonPayload': {'a': a, 'b': b, 'c': c, 'd': d}}
    assert flt.matches(entry) == bool((a or not b) and (not c or d)), (a, b, c, d)


def test_or_binds_tighter_than_and_unlike_sql():
  assert tree('severity=ERROR AND httpRequest.status=500 OR httpRequest.status=503') == \
      'severity = "ERROR" AND (httpRequest.status = "500" OR httpRequest.status = "503")'
  entry = {'severity': 'INFO', 'httpRequest': {'status': 503}}
  assert not match('severity=ERROR AND httpRequest.status=500 OR httpRequest.status=503', entry)


def test_juxtaposition_is_and_below_or():
  assert tree('severity=ERROR httpRequest.status=500 OR httpRequest.status=503') == \
      'severity = "ERROR" AND (httpRequest.status = "500" OR httpRequest.status = "503")'
  assert tree('severity=ERROR AND httpRequest.status=503') == \
      tree('severity=ERROR httpRequest.status=503')
  assert match('severity=ERROR httpRequest.status=503')
  assert not match('severity=ERROR httpRequest.status=500')


def test_not_binds_tightest():
  assert tree('NOT severity=ERROR OR httpRequest.status=503') == \
      'NOT severity = "ERROR" OR httpRequest.status = "503"'
  assert match('NOT severity=ERROR OR httpRequest.status=503')
  assert not match('NOT (severity=ERROR OR httpRequest.status=503)')
  assert match('NOT NOT severity=ERROR')


def test_minus_is_not():
  assert tree('-severity=ERROR') == tree('NOT severity=ERROR') == 'NOT severity = "ERROR"'
  # The documented pair: a="b" AND c="d" AND NOT e="f" is a="b" c="d" -e="f".
  assert tree('labels.env=prod AND resource.type=k8s_container AND NOT severity=INFO') == \
      tree('labels.env=prod resource.type=k8s_container -severity=INFO')
  assert match('labels.env=prod resource.type=k8s_container -severity=INFO')
  assert not match('-(severity=ERROR)')


def test_parentheses_override_precedence():
  assert tree('(severity=INFO AND httpRequest.status=500) OR httpRequest.status=503') == \
      '(severity = "INFO" AND httpRequest.status = "500") OR httpRequest.status = "503"'
  assert match('(severity=INFO AND httpRequest.status=500) OR httpRequest.status=503')
  assert not match('severity=INFO AND httpRequest.status=500 OR httpRequest.status=503')
  assert tree('((severity=ERROR))') == 'severity = "ERROR"'


def test_lower_case_boolean_words_are_not_operators():
  assert 'AND, OR and NOT are upper case' in error('severity=ERROR and labels.env=prod')
  assert 'AND, OR and NOT are upper case' in error('severity and')


# --- comparisons --------------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('httpRequest.status=503', True), ('httpRequest.status="503"', True),
    ('httpRequest.status!=503', False), ('httpRequest.status!=500', True),
    ('httpRequest.status>500', True), ('httpRequest.status>503', False),
    ('httpRequest.status>=503', True), ('httpRequest.status<503', False),
    ('httpRequest.status<=503', True), ('httpRequest.status<600', True),
    ('httpRequest.requestMethod=GET', True), ('httpRequest.requestMethod=get', True),
    ('httpRequest.requestMethod!=POST', True), ('httpRequest.requestMethod<H', True),
    ('httpRequest.requestUrl:"/API/"', True), ('httpRequest.requestUrl:"/api/x"', False),
    ('httpRequest.userAgent=~"^curl/[0-9]"', True), ('httpRequest.userAgent!~"^curl"', False),
    ('httpRequest.userAgent!~"wget"', True),
])
def test_each_operator(text, expected):
  assert match(text) is expected


def test_string_comparisons_ignore_case_but_regexes_do_not():
  assert match('resource.type=K8S_CONTAINER') and match('labels.env:"PRO"')
  assert match('jsonPayload.user.name="ADA"') and match('jsonPayload.user.name:"ａｄａ"')  # NFKC
  assert not match('httpRequest.userAgent=~"CURL"')
  assert match('httpRequest.userAgent=~"(?i)CURL"')


def test_has_is_a_substring_search():
  assert match('logName:"struct_log"') and match('logName:struct_')
  assert match('httpRequest.status:503') and not match('httpRequest.status:50')
  assert not match('jsonPayload.text:"--quiet"')


def test_regex_is_an_unanchored_search_on_strings_only():
  assert match('jsonPayload.text=~"-a"') and match('jsonPayload.text=~"verbose$"')
  assert not match('jsonPayload.text=~"^-a"')
  assert not match('httpRequest.status=~"503"') and not match('httpRequest.status!~"503"')
  assert match('labels.env =~ ("^prod" OR "^staging")')


def test_numeric_strings_compare_as_numbers():
  assert match('httpRequest.responseSize>500') and match('httpRequest.responseSize=577')
  assert not match('httpRequest.responseSize>1000')  # as strings "577" > "1000"
  assert match('jsonPayload.code=7') and match('jsonPayload.code="7"')
  assert match('jsonPayload.code>=-1e3')
  big = {'jsonPayload': {'id': '9223372036854775807'}}
  assert match('jsonPayload.id=9223372036854775807', big)
  assert not match('jsonPayload.id=9223372036854775806', big)


def test_text_and_numbers_do_not_mix():
  assert not match('httpRequest.status>abc') and not match('httpRequest.status!=abc')
  assert match('jsonPayload.text>"run"')  # both text: a string comparison
  assert match('jsonPayload.ok=true') and match('jsonPayload.ok=TRUE')
  assert not match('jsonPayload.ok=1') and match('jsonPayload.ok>false')


@pytest.mark.parametrize('latency, text, expected', [
    ('0.005192s', 'httpRequest.latency>1s', False),
    ('60.369159188s', 'httpRequest.latency>1s', True),
    ('0.005192s', 'httpRequest.latency<250ms', True),
    ('0.3s', 'httpRequest.latency>=250ms', True),
    ('1.5s', 'httpRequest.latency=1.5s', True),
    ('1.5s', 'httpRequest.latency>"1.5s"', False),
    ('90s', 'httpRequest.latency>1m', True),
    ('1s', 'httpRequest.latency>999ms', True),  # Logging's own example
    ('0.000002s', 'httpRequest.latency>1500ns', True),
])
def test_durations_compare_as_seconds(latency, text, expected):
  assert match(text, {'httpRequest': {'latency': latency}}) is expected


def test_severity_compares_by_level():
  for name, entry_severity in (('error', 'ERROR'), ('Error', 'error'), ('500', 'ERROR'),
                               ('ERROR', 500), ('ERROR', '500')):
    assert match('severity=%s' % name, {'severity': entry_severity})
  assert match('severity>WARNING', {'severity': 'CRITICAL'})
  assert not match('severity>=ERROR', {'severity': 'WARNING'})
  assert match('severity<NOTICE', {'severity': 'INFO'})
  assert match('severity>=ALERT', {'severity': 'EMERGENCY'})
  assert match('severity>=450', {'severity': 'ERROR'})
  assert match('severity:ERROR') and not match('severity:WARNING')
  levels = ['DEFAULT', 'DEBUG', 'INFO', 'NOTICE', 'WARNING', 'ERROR', 'CRITICAL', 'ALERT',
            'EMERGENCY']
  for low, high in itertools.pairwise(levels):
    assert match('severity<%s' % high, {'severity': low})
    assert not match('severity>=%s' % high, {'severity': low})


def test_absent_severity_is_default():
  assert match('severity=DEFAULT', {}) and match('severity<DEBUG', {})
  assert not match('severity>=DEBUG', {}) and match('severity=DEFAULT', {'severity': None})
  assert match('severity!=ERROR', {})
  assert not match('severity>=DEBUG', {'severity': 'LOUD'})  # unknown: false, never raises


def test_nested_and_quoted_paths():
  assert match('resource.labels.zone="europe-west1-b"')
  assert match('labels."k8s-pod/app"=checkout') and match('labels."env"=prod')
  assert match('jsonPayload.user.tags:vip') and match('jsonPayload.items.sku="B2"')
  assert not match('jsonPayload.items.sku="C3"')


def test_objects_and_arrays():
  assert match('jsonPayload.user:ada') and match('jsonPayload:"--verbose"')
  assert not match('jsonPayload.user=ada') and not match('jsonPayload.user!=ada')
  # An array compares member by member, joined by OR: {8.5, 9, 6} < 7 holds.
  assert match('jsonPayload.sizes<7') and not match('jsonPayload.sizes>9')
  assert match('jsonPayload.sizes=9')


def test_presence_and_null():
  assert match('jsonPayload.text:*') and match('httpRequest.latency:*')
  assert not match('jsonPayload.missing:*') and not match('jsonPayload.nothing:*')
  assert match('jsonPayload.nothing=NULL_VALUE') and not match('jsonPayload.text=NULL_VALUE')
  assert match('jsonPayload.text!=NULL_VALUE') and not match('jsonPayload.gone=NULL_VALUE')
  assert not match('jsonPayload.nothing="NULL_VALUE"')


def test_a_comparison_on_several_values():
  assert match('resource.type = ("gce_instance" OR "k8s_container")')
  assert not match('resource.type = ("gce_instance" OR "aws_ec2_instance")')
  assert match('jsonPayload.text:(run verbose)') and not match('jsonPayload.text:(run quiet)')
  assert match('jsonPayload.text:(run AND NOT quiet)')


def test_missing_fields_make_comparisons_false_but_not_negations_true():
  assert not match('httpRequest.status>1', AUDIT) and not match('httpRequest.status!=1', AUDIT)
  for text in ('jsonPayload.nope=1', 'jsonPayload.nope!=1', 'jsonPayload.nope>1',
               'jsonPayload.nope:x', 'jsonPayload.nope=~"."', 'jsonPayload.nope!~"."',
               'labels.absent!=x', 'jsonPayload.text.deeper=x'):
    assert not match(text), text
  # As documented: NOT missingField=foo is true while missingField!=foo is false.
  assert match('NOT jsonPayload.nope=foo') and not match('jsonPayload.nope!=foo')


def test_url_encoded_log_names_match_either_spelling():
  assert match('logName:"cloudaudit.googleapis.com/activity"', AUDIT)
  assert match('logName:"cloudaudit.googleapis.com%2Factivity"', AUDIT)
  assert match('logName="projects/p/logs/cloudaudit.googleapis.com/activity"', AUDIT)
  assert match('logName=~"activity$"', AUDIT) and match('logName=~"/activity$"', AUDIT)
  assert not match('logName!="projects/p/logs/cloudaudit.googleapis.com/activity"', AUDIT)
  assert not match('logName!~"googleapis.com/act"', AUDIT)
  assert match('logName!="projects/p/logs/other"', AUDIT)
  assert not match('logName:"struct_log"', AUDIT)


WEIRD_ENTRIES = [
    None, [], 'text', 42, {}, {'severity': 7.5}, {'severity': {'x': 1}}, {'severity': True},
    {'httpRequest': None}, {'httpRequest': 'GET /'}, {'httpRequest': {'status': None}},
    {'httpRequest': {'status': [500, '503', None, {'x': 1}]}},
    {'httpRequest': {'status': 'x' * 10000, 'latency': 12, 'responseSize': '9' * 5000}},
    {'httpRequest': {'latency': {'seconds': 1}, 'responseSize': float('nan')}},
    {'jsonPayload': [1, {'text': 'a'}]}, {'jsonPayload': {'text': b'bytes', 'code': object()}},
    {'jsonPayload': {'text': '\ud800 lone surrogate', 'sizes': 'not a list'}},
    {'logName': 12, 'labels': ['k8s-pod/app']}, {'logName': '%zz%2'}, {1: 2, None: 3},
]


def test_evaluation_never_raises():
  cyclic = {'jsonPayload': {}}
  cyclic['jsonPayload']['self'] = cyclic
  cyclic['jsonPayload']['list'] = [cyclic['jsonPayload']]
  texts = ['severity>=ERROR', 'severity=~"E"', 'severity!=DEFAULT', 'severity:*',
           'httpRequest.status>=500', 'httpRequest.status:5', 'httpRequest.status=~"5"',
           'httpRequest.latency>1s', 'httpRequest.responseSize>1', 'jsonPayload:a',
           'jsonPayload.text:"a"', 'jsonPayload.text=NULL_VALUE', 'jsonPayload.code<=x',
           'jsonPayload.sizes<7', 'logName:"a/b"', 'logName!="a"', 'labels:"k8s"',
           'jsonPayload.self.self.list:x', 'NOT jsonPayload.ok=true', '']
  for text, entry in itertools.product(texts, WEIRD_ENTRIES + [cyclic]):
    assert parse_filter(text).matches(entry) in (True, False), (text, entry)


# --- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize('text, message', [
    ('severity>=ERROR)', "unexpected ')' at column 16 in: severity>=ERROR)"),
    ('(severity>=ERROR', "unclosed '(' at column 1 in: (severity>=ERROR"),
    ('((severity>=ERROR)', "unclosed '(' at column 1 in: ((severity>=ERROR)"),
    ('()', 'empty parentheses at column 2 in: ()'),
    ('severity>=', 'missing value after severity>= at column 11 in: severity>='),
    ('severity>= AND labels.a=b', 'missing value after severity>= at column 12'),
    ('severity>=)', 'missing value after severity>= at column 11'),
    ('severity == ERROR', "unknown operator '==' at column 10 in: severity == ERROR"),
    ('severity ~ ERROR', "unknown operator '~' at column 10"),
    ('severity ERROR', "expected an operator (= != < <= > >= : =~ !~) after severity, "
                       "found 'ERROR' at column 10"),
    ('jsonPayload.text=~"a("', 'bad regular expression "a(": missing ), unterminated '
                               'subpattern at position 1 at column 19'),
    ('jsonPayload.text!~"*"', 'bad regular expression "*": nothing to repeat'),
    ('severity>=ERROR "x"', 'a bare value (global search) is not supported at column 17'),
    ('severity>=ERROR ~~', "expected a field name, found '~~' at column 17"),
    ('severity>=ERROR AND', 'expected a field name, found end of filter at column 20'),
    ('severity>=ERROR OR OR severity=INFO', "unexpected 'OR' at column 20"),
    ('jsonPayload.text="abc', 'unterminated string at column 18'),
    ('severity>=LOUD', 'unknown severity "LOUD", expected a number or one of DEFAULT DEBUG'),
    ('sevrity>=ERROR', 'unknown field sevrity (not in LogEntry) at column 1'),
    ('httpRequest.code=1', 'unknown field httpRequest.code (not in LogEntry)'),
    ('logName.x=1', 'unknown field logName.x (not in LogEntry)'),
])
def test_bad_filters_say_what_and_where(text, message):
  assert message in error(text)


def test_error_carries_reason_and_column():
  with pytest.raises(FilterError) as info:
    parse_filter('labels.a=b  )')
  assert (info.value.reason, info.value.column) == ("unexpected ')'", 13)
  assert isinstance(info.value, ValueError)


def test_runaway_filters_are_refused():
  assert 'nested more than 100 deep' in error('(' * 150 + 'severity=INFO' + ')' * 150)
  assert 'nested more than 100 deep' in error('NOT ' * 150 + 'severity=INFO')
  assert parse_filter('(' * 50 + 'severity=INFO' + ')' * 50).matches({'severity': 'INFO'})
  assert 'longer than 20000' in error('severity=INFO ' * 2000)


# --- --metric NAME=FILTER -----------------------------------------------------------------

def test_parse_metric():
  name, flt = parse_metric('server_errors=httpRequest.status>=500')
  assert name == 'server_errors' and flt.matches(REQUEST) and str(flt) == 'httpRequest.status>=500'
  name, flt = parse_metric(' slow = jsonPayload.text="a=b" OR severity>=ERROR')
  assert name == 'slow' and tree(flt.text) == 'jsonPayload.text = "a=b" OR severity >= "ERROR"'


@pytest.mark.parametrize('spec, message', [
    ('=severity>=ERROR', 'expected NAME=FILTER'),
    ('   =severity>=ERROR', 'expected NAME=FILTER'),
    ('server_errors', 'expected NAME=FILTER'),
    ('severity>=ERROR', "bad metric name 'severity>'"),
    ('9lives=severity>=ERROR', "bad metric name '9lives'"),
    ('my-metric=severity>=ERROR', "bad metric name 'my-metric'"),
    ('errors=', 'metric errors has an empty filter'),
    ('errors=  ', 'metric errors has an empty filter'),
    ('errors=severity>=ERROR)', "metric errors: unexpected ')' at column 16 in: severity>=ERROR)"),
])
def test_bad_metrics(spec, message):
  with pytest.raises(FilterError) as info:
    parse_metric(spec)
  assert message in str(info.value)


def test_timestamps_compare_as_instants():
  after = parse_filter('timestamp>="2024-01-01T00:00:00Z"')
  assert after.matches({'timestamp': '2024-01-01T00:00:00.5Z'})
  assert not after.matches({'timestamp': '2024-01-01T00:30:00+01:00'})  # 23:30 UTC before
  assert not after.matches({'timestamp': 'not a time'})
  with pytest.raises(FilterError, match='is not a timestamp'):
    parse_filter('timestamp>"yesterday"')


def test_latency_in_its_object_form_compares_as_a_duration():
  slow = parse_filter('httpRequest.latency>1s')
  assert slow.matches({'httpRequest': {'latency': {'seconds': 5}}})
  assert not slow.matches({'httpRequest': {'latency': {'seconds': 0, 'nanos': 500000000}}})
