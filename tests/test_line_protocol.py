"""parse_line: InfluxDB line protocol in, typed Points or a LineProtocolError with a reason out.

Expected values are written out by hand from the InfluxDB v2 line protocol reference. The
random tests check the two promises a pipeline leans on: no exception but LineProtocolError
escapes, whatever arrives, and anything written by the spec's escaping rules reads back.
"""
import math
import pickle
import random

import pytest

from transforms.line_protocol import (
    LineProtocolError, Point, _parse, _parse_plain, is_comment_or_blank, parse_line)

INT64_MIN = -2**63
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def point(measurement, tags=None, fields=None, timestamp_ns=None):
  return Point(measurement, tags or {}, fields or {}, timestamp_ns)


def assert_same(got, expected):
  """Equal, and every field value of the same type (1 == 1.0 == True would hide mistakes)."""
  assert got == expected
  assert list(got.tags) == list(expected.tags)
  assert list(got.fields) == list(expected.fields)
  for key, value in expected.fields.items():
    assert type(got.fields[key]) is type(value), key
  assert type(got.timestamp_ns) is type(expected.timestamp_ns)


# --- valid lines -----------------------------------------------------------------------------


@pytest.mark.parametrize('line,expected', [
    # the brief's gateway line
    ('weather,location=us-midwest,device_id=pi-7 temperature=82,humidity=40i,ok=t '
     '1465839830100400200',
     point('weather', {'location': 'us-midwest', 'device_id': 'pi-7'},
           {'temperature': 82.0, 'humidity': 40, 'ok': True}, 1465839830100400200)),
    # the reference's syntax examples
    ('myMeasurement,tag1=value1,tag2=value2 fieldKey="fieldValue" 1556813561098000000',
     point('myMeasurement', {'tag1': 'value1', 'tag2': 'value2'}, {'fieldKey': 'fieldValue'},
           1556813561098000000)),
    ('measurementName,tagKey=tagValue fieldKey="fieldValue" 1465839830100400200',
     point('measurementName', {'tagKey': 'tagValue'}, {'fieldKey': 'fieldValue'},
           1465839830100400200)),
    ('myTable,tag1=val1,tag2=val2 field1="v1",field2=1i 0000000000000000000',
     point('myTable', {'tag1': 'val1', 'tag2': 'val2'}, {'field1': 'v1', 'field2': 1}, 0)),
    ('myMeasurement fieldKey="this is a string"',
     point('myMeasurement', fields={'fieldKey': 'this is a string'})),
    ('myMeasurementName fieldKey="fieldValue" 1556813561098000000',
     point('myMeasurementName', fields={'fieldKey': 'fieldValue'}, timestamp_ns=1556813561098000000)),
    # the reference's special-character examples
    (r'my\ Measurement fieldKey="string value"',
     point('my Measurement', fields={'fieldKey': 'string value'})),
    (r'myMeasurement fieldKey="\"string\" within a string"',
     point('myMeasurement', fields={'fieldKey': '"string" within a string'})),
    (r'myMeasurement,tag\ Key1=tag\ Value1,tag\ Key2=tag\ Value2 fieldKey=100',
     point('myMeasurement', {'tag Key1': 'tag Value1', 'tag Key2': 'tag Value2'},
           {'fieldKey': 100.0})),
    ('myMeasurement,tagKey=🍭 fieldKey="Launch 🚀" 1556813561098000000',
     point('myMeasurement', {'tagKey': '🍭'}, {'fieldKey': 'Launch 🚀'}, 1556813561098000000)),
    ("joe'smeasurement,pat'sTag=tag1 fieldKey=100",
     point("joe'smeasurement", {"pat'sTag": 'tag1'}, {'fieldKey': 100.0})),
    (r'foo,a\ b=x,aB=y value=99', point('foo', {'a b': 'x', 'aB': 'y'}, {'value': 99.0})),
    (r'cpu,host=server\ 01,region=uswest value=1.0,msg="all systems nominal"',
     point('cpu', {'host': 'server 01', 'region': 'uswest'},
           {'value': 1.0, 'msg': 'all systems nominal'})),
    ('airSensor,sensor_id=TLM\\=0201 temp=70.0,humidity=0.5',
     point('airSensor', {'sensor_id': 'TLM=0201'}, {'temp': 70.0, 'humidity': 0.5})),
])
def test_reference_examples(line, expected):
  assert_same(parse_line(line), expected)


@pytest.mark.parametrize('line,measurement,tags,fields', [
    # measurement: '\,' and '\ ' unescape; '=' needs no escape and '\=' stays as written
    (r'my\,meas f=1', 'my,meas', {}, {'f': 1.0}),
    (r'my\ meas\,ure f=1', 'my meas,ure', {}, {'f': 1.0}),
    (r'\ lead f=1', ' lead', {}, {'f': 1.0}),
    (r'trail\  f=1', 'trail ', {}, {'f': 1.0}),
    ('a=b f=1', 'a=b', {}, {'f': 1.0}),
    (r'a\=b f=1', 'a\\=b', {}, {'f': 1.0}),
    # tag keys and values: '\,', '\=' and '\ ' unescape
    (r'm,k\,1=v\,1 f=1', 'm', {'k,1': 'v,1'}, {'f': 1.0}),
    (r'm,k\=1=v\=1 f=1', 'm', {'k=1': 'v=1'}, {'f': 1.0}),
    (r'm,k\ 1=v\ 1 f=1', 'm', {'k 1': 'v 1'}, {'f': 1.0}),
    (r'm,path=C:\\x\,y f=1', 'm', {'path': 'C:\\\\x,y'}, {'f': 1.0}),
    ('m,eq=a=b f=1', 'm', {'eq': 'a=b'}, {'f': 1.0}),            # a later '=' is part of it
    ('m,q="quoted" f=1', 'm', {'q': '"quoted"'}, {'f': 1.0}),    # quotes are plain characters
    ('m,z=1,a=2,m=3 f=1', 'm', {'z': '1', 'a': '2', 'm': '3'}, {'f': 1.0}),  # order kept
    # field keys: '\,', '\=' and '\ ' unescape
    (r'm f\,k=1,f\=k=2,f\ k=3', 'm', {}, {'f,k': 1.0, 'f=k': 2.0, 'f k': 3.0}),
    # a backslash before anything else (another backslash too) is kept as written
    (r'm\x,t\y=a\b f\c=1', 'm\\x', {'t\\y': 'a\\b'}, {'f\\c': 1.0}),
    (r'm\\,t=1 f=1', 'm\\,t=1', {}, {'f': 1.0}),
    # string field values: '\"' and '\\' unescape, other backslashes stay
    (r'm s="a\\b"', 'm', {}, {'s': 'a\\b'}),
    (r'm s="C:\path\n"', 'm', {}, {'s': 'C:\\path\\n'}),
    (r'm s="\\"', 'm', {}, {'s': '\\'}),
    (r'm s="\\\""', 'm', {}, {'s': '\\"'}),
    ('m s=""', 'm', {}, {'s': ''}),
    ('m s="a b,c=d e#f",g=1', 'm', {}, {'s': 'a b,c=d e#f', 'g': 1.0}),
    ('m s="  spaced  "', 'm', {}, {'s': '  spaced  '}),
    ('m s="tab\there"', 'm', {}, {'s': 'tab\there'}),
    ('m s="1i",t="true",u="82"', 'm', {}, {'s': '1i', 't': 'true', 'u': '82'}),
])
def test_escaping(line, measurement, tags, fields):
  assert_same(parse_line(line), point(measurement, tags, fields))


def test_backslash_then_escaped_space():
  # '\\ ' is a literal backslash, then an escaped space: still one measurement, so no fields.
  with pytest.raises(LineProtocolError, match='^missing fields at column 8$'):
    parse_line('m\\\\ f=1')


def test_names_cannot_end_with_a_backslash():
  # The spec's consequence of its escaping rules: the backslash escapes the delimiter.
  with pytest.raises(LineProtocolError, match='^missing fields at column 11$'):
    parse_line('m,t=a\\ f=1')
  assert_same(parse_line('m,t=a\\,b=c f=1'), point('m', {'t': 'a,b=c'}, {'f': 1.0}))


@pytest.mark.parametrize('raw,value', [
    ('82', 82.0), ('82.5', 82.5), ('-1.5e3', -1500.0), ('1E-2', 0.01), ('.5', 0.5),
    ('-.5', -0.5), ('1.', 1.0), ('-0', 0.0), ('007', 7.0), ('1e+16', 1e16), ('1.0', 1.0),
    ('-1.234456e+78', -1.234456e+78), ('5e-324', 5e-324),
    ('1.7976931348623157e308', 1.7976931348623157e308),
    ('82i', 82), ('-3i', -3), ('0i', 0), ('-0i', 0), ('12485903i', 12485903),
    ('-12485903i', -12485903), ('9223372036854775807i', INT64_MAX),
    ('-9223372036854775808i', INT64_MIN), ('0009223372036854775807i', INT64_MAX),
    ('7u', 7), ('0u', 0), ('12485903u', 12485903), ('18446744073709551615u', UINT64_MAX),
    ('t', True), ('T', True), ('true', True), ('True', True), ('TRUE', True),
    ('f', False), ('F', False), ('false', False), ('False', False), ('FALSE', False),
])
def test_field_value_types(raw, value):
  for line in ('m v=%s' % raw, 'm,t=x v=%s,w="s" 1' % raw, 'm  v=%s' % raw):
    got = parse_line(line).fields['v']
    assert got == value and type(got) is type(value), line


def test_timestamps():
  assert parse_line('m f=1').timestamp_ns is None
  assert parse_line('m f=1 1465839830100400200').timestamp_ns == 1465839830100400200
  assert parse_line('m f=1 -1465839830100400200').timestamp_ns == -1465839830100400200
  assert parse_line('m f=1 0').timestamp_ns == 0
  assert parse_line('m f=1 -0').timestamp_ns == 0
  assert parse_line('m f=1 %d' % INT64_MAX).timestamp_ns == INT64_MAX
  assert parse_line('m f=1 %d' % INT64_MIN).timestamp_ns == INT64_MIN
  assert parse_line('m s="x y" 5').timestamp_ns == 5
  assert parse_line('m f=1 ' + '0' * 5000 + '42').timestamp_ns == 42


def test_duplicate_field_keys_last_wins():
  assert_same(parse_line('m a=1,b=2,a="three"'), point('m', fields={'a': 'three', 'b': 2.0}))


@pytest.mark.parametrize('line', [
    'm,t=x f=1i 5\n', 'm,t=x f=1i 5\r\n', 'm,t=x f=1i 5\r', '  m,t=x f=1i 5', '\tm,t=x f=1i 5\t',
    'm,t=x  f=1i  5', 'm,t=x\tf=1i\t5', 'm,t=x \t f=1i \t 5 \r\n',
])
def test_whitespace_around_and_between_sections(line):
  assert_same(parse_line(line), point('m', {'t': 'x'}, {'f': 1}, 5))


def test_point_is_a_named_tuple():
  got = parse_line('m,t=x f=1')
  assert got.measurement == 'm' and got[0] == 'm'
  assert got._asdict() == {'measurement': 'm', 'tags': {'t': 'x'}, 'fields': {'f': 1.0},
                           'timestamp_ns': None}


# --- comments and blank lines ----------------------------------------------------------------


@pytest.mark.parametrize('line,expected', [
    ('', True), ('   ', True), ('\r\n', True), ('\t \n', True),
    ('# a comment', True), ('#', True), ('   # indented comment', True), ('#m f=1', True),
    ('m f=1', False), (' m f=1', False), (r'\#m f=1', False), ('m#x f=1', False),
    ('m s="#" ', False),
])
def test_is_comment_or_blank(line, expected):
  assert is_comment_or_blank(line) is expected


def test_hash_inside_a_line_is_not_a_comment():
  assert_same(parse_line('m#1,t=#2 f="#3"'), point('m#1', {'t': '#2'}, {'f': '#3'}))
  assert_same(parse_line(r'\#m f=1'), point('\\#m', fields={'f': 1.0}))


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize('line,message', [
    # what is not a point at all
    ('', 'empty line'),
    (' \t\r\n', 'empty line'),
    ('# a comment', 'comment line at column 1'),
    ('  # a comment', 'comment line at column 3'),
    ('m f=1\nm f=2', 'line contains a newline at column 6'),
    # measurement and tags
    (',t=1 f=1', 'missing measurement at column 1'),
    (' ,t=1 f=1', 'missing measurement at column 2'),
    ('m,=v f=1', 'empty tag key at column 3'),
    ('m, f=1', 'empty tag key at column 3'),
    ('m,t=1, f=1', 'empty tag key at column 7'),
    ('m,t f=1', "tag 't': missing '=' at column 4"),
    ('m,t,u=1 f=1', "tag 't': missing '=' at column 4"),
    ('m,t= f=1', "tag 't': empty value at column 5"),
    ('m,t=,u=1 f=1', "tag 't': empty value at column 5"),
    ('m,t=a,t=b f=1', "duplicate tag 't' at column 7"),
    ('m,loc=us midwest f=1', "field 'midwest': missing '=' at column 17"),   # unescaped space
    # fields
    ('weather', 'missing fields at column 8'),
    ('weather ', 'missing fields at column 8'),
    ('weather,location=us-midwest', 'missing fields at column 28'),
    ('weather,location=us-midwest \r\n', 'missing fields at column 28'),
    ('m =1', 'empty field key at column 3'),
    ('m f=1,', 'empty field key at column 7'),
    ('m f=1,,g=2', 'empty field key at column 7'),
    ('m f', "field 'f': missing '=' at column 4"),
    ('m f,g=1', "field 'f': missing '=' at column 4"),
    ('m f=', "field 'f': missing value at column 5"),
    ('m f=,g=1', "field 'f': missing value at column 5"),
    ('m f= 1', "field 'f': missing value at column 5"),
    ('m temperature=hot', "field 'temperature': invalid value 'hot' at column 15"),
    ('m a=1,temperature=82x 5', "field 'temperature': invalid value '82x' at column 19"),
    ('m f="abc', "field 'f': unterminated string at column 5"),
    ('m f="abc\\"', "field 'f': unterminated string at column 5"),
    ('m f="abc\\\\\\"', "field 'f': unterminated string at column 5"),
    ('m f="a"b', "field 'f': unexpected 'b' after string at column 8"),
    ('m f="a""b"', "field 'f': unexpected '\"' after string at column 8"),
    ('m f=a"b c"', "field 'f': invalid value 'a\"b' at column 5"),
    ('m f=1 g=2', "invalid timestamp 'g=2' at column 7"),
    # numbers out of range
    ('m f=9223372036854775808i', "field 'f': integer out of range '9223372036854775808i' at column 5"),
    ('m f=-9223372036854775809i',
     "field 'f': integer out of range '-9223372036854775809i' at column 5"),
    ('m f=18446744073709551616u',
     "field 'f': unsigned integer out of range '18446744073709551616u' at column 5"),
    ('m f=-3u', "field 'f': negative unsigned integer '-3u' at column 5"),
    ('m f=1e309', "field 'f': float out of range '1e309' at column 5"),
    ('m f=-1e999', "field 'f': float out of range '-1e999' at column 5"),
    # timestamps
    ('m f=82 12ab', "invalid timestamp '12ab' at column 8"),
    ('m f=82 1.5', "invalid timestamp '1.5' at column 8"),
    ('m f=82 +1', "invalid timestamp '+1' at column 8"),
    ('m f=82 1_000', "invalid timestamp '1_000' at column 8"),
    ('m f=82 -', "invalid timestamp '-' at column 8"),
    ('m f=82 1 2', "unexpected text after timestamp '2' at column 10"),
    ('m f=82 1  extra words', "unexpected text after timestamp 'extra words' at column 11"),
    ('m f=82 9223372036854775808', "timestamp out of range '9223372036854775808' at column 8"),
    ('m f=82 -9223372036854775809', "timestamp out of range '-9223372036854775809' at column 8"),
    # columns count in the caller's line, leading whitespace included
    ('   m f=hot', "field 'f': invalid value 'hot' at column 8"),
])
def test_errors(line, message):
  with pytest.raises(LineProtocolError) as info:
    parse_line(line)
  assert str(info.value) == message


@pytest.mark.parametrize('raw', [
    'abc', '82x', 'nan', 'NaN', 'inf', '-inf', 'Infinity', '+1', '+1i', '1_000', '0x10', '1.2.3',
    '1e', 'e5', '1e5.5', '-', '.', '-.', 'i', 'u', '-i', '1ii', '1i2', '1.5i', '1e3i', '1.5u',
    'yes', 'no', 'tru', 'tRUE', 'fAlse', "'s'", '٣', '１', '١٢i', '²', '1\x00',
])
def test_invalid_field_values(raw):
  # Also what float() and int() alone would take: '+1', '1_000', 'nan', 'inf', non-ASCII digits.
  with pytest.raises(LineProtocolError) as info:
    parse_line('m,t=x val=%s 1' % raw)
  assert info.value.reason == "field 'val': invalid value %r" % raw


def test_error_is_a_value_error_with_reason_and_column():
  with pytest.raises(ValueError) as info:
    parse_line('m f=hot')
  error = info.value
  assert isinstance(error, LineProtocolError)
  assert (error.reason, error.column) == ("field 'f': invalid value 'hot'", 5)
  again = pickle.loads(pickle.dumps(error))
  assert (str(again), again.reason, again.column) == (str(error), error.reason, error.column)
  assert LineProtocolError('empty line').column is None


def test_long_values_are_cut_short_in_messages():
  with pytest.raises(LineProtocolError) as info:
    parse_line('m f=' + 'x' * 1000)
  assert str(info.value) == "field 'f': invalid value '%s...' at column 5" % ('x' * 40)


def test_huge_numbers_do_not_hit_the_int_digit_limit():
  for line in ('m f=1 ' + '9' * 5000, 'm f=%si' % ('9' * 5000), 'm f=%su' % ('9' * 5000)):
    with pytest.raises(LineProtocolError, match='out of range'):
      parse_line(line)
  assert parse_line('m f=%si' % ('0' * 5000 + '7')).fields == {'f': 7}


def test_not_a_str():
  for value in (b'm f=1', None, 42):
    with pytest.raises(LineProtocolError, match='^expected str, got '):
      parse_line(value)


# --- random input ----------------------------------------------------------------------------

_NOISE = ['m', 'f', 'x', '=', '=', ',', ',', ' ', ' ', '\t', '\\', '\\', '"', '"', '#', '1', '0',
          '-', '.', 'e', 'i', 'u', 't', 'T', 'F', 'true', 'false', '9' * 20, '\r', '\n', 'é', '🍭',
          '\x00', '\u3000', '٣']

_SEEDS = [
    'weather,location=us-midwest,device_id=pi-7 temperature=82,humidity=40i,ok=t '
    '1465839830100400200',
    r'my\ Meas\,ure,tag\ Key=tag\ V\=al f\ k="a \"q\" \\ b, c=d",n=-1.5e3,u=7u -1',
    'cpu,host=a usage=0.5,idle=99i',
    'm s="x y",b=FALSE 0',
]


def _check_outcome(line):
  """Parse: only a Point or a LineProtocolError may come out, and the two paths must agree."""
  try:
    got = parse_line(line)
  except LineProtocolError as e:
    assert isinstance(e.reason, str) and e.reason
    return None
  assert isinstance(got, Point)
  assert isinstance(got.measurement, str) and got.measurement
  assert all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in got.tags.items())
  assert got.fields and all(isinstance(k, str) and k for k in got.fields)
  for value in got.fields.values():
    assert type(value) in (float, int, bool, str)
    if type(value) is float:
      assert math.isfinite(value)
    if type(value) is int:
      assert INT64_MIN <= value <= UINT64_MAX
  assert got.timestamp_ns is None or INT64_MIN <= got.timestamp_ns <= INT64_MAX
  return got


def test_random_garbage_only_raises_line_protocol_error():
  rng = random.Random(20240601)
  for _ in range(20000):
    line = ''.join(rng.choice(_NOISE) for _ in range(rng.randint(0, 30)))
    _check_outcome(line)
  for _ in range(2000):
    line = ''.join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(0, 60)))
    _check_outcome(line)


def test_mutated_valid_lines_only_raise_line_protocol_error():
  rng = random.Random(7)
  parsed = 0
  for _ in range(20000):
    chars = list(rng.choice(_SEEDS))
    for _ in range(rng.randint(1, 4)):
      at = rng.randrange(len(chars) + 1)
      action = rng.random()
      if action < 0.4 and at < len(chars):
        del chars[at]
      elif action < 0.7:
        chars.insert(at, rng.choice(_NOISE))
      elif at < len(chars):
        chars[at] = rng.choice(_NOISE)
    if _check_outcome(''.join(chars)) is not None:
      parsed += 1
  assert parsed > 1000   # the mutations still reach deep into valid territory


def _plain_line(rng):
  """A line without backslashes or quotes, often valid, often subtly not."""
  def name():
    length = 0 if rng.random() < 0.03 else rng.randint(1, 3)
    return ''.join(rng.choice('abxyz#-.=0') for _ in range(length))

  def value():
    if rng.random() < 0.8:
      return rng.choice(['1', '-1.5', '1e3', '.5', '1.', '7i', '-3i', '7u', 't', 'FALSE'])
    return rng.choice(['x', '', '-3u', '1e999', '9' * 20 + 'i', '9' * 20 + 'u', '1=2', 'nan'])

  tags = ''.join(',%s=%s' % (name(), name()) for _ in range(rng.randint(0, 2)))
  fields = ','.join('%s=%s' % (name(), value()) for _ in range(rng.randint(1, 3)))
  stamp = rng.choice(['', '', '0', '-5', '12ab', '9' * 19, '9' * 20, '1 2'])
  sep = lambda: ' ' if rng.random() < 0.9 else rng.choice(['', '  ', ',', '\t'])  # noqa: E731
  return name() + tags + sep() + fields + (sep() + stamp if stamp else '')


def test_fast_path_agrees_with_the_scanner():
  """Wherever the plain-split fast path answers, the general scanner gives the same Point."""
  rng = random.Random(11)
  answered = 0
  for _ in range(30000):
    text = _plain_line(rng).strip()
    fast = _parse_plain(text)
    if fast is not None:
      answered += 1
      assert_same(_parse(text), fast)
  assert answered > 1000


# Characters that stress escaping: delimiters, backslashes, quotes, '#', non-ASCII.
_NAME_CHARS = 'ab_-Z9 ,=\\"#\'é🍭'


def _random_name(rng):
  while True:
    name = ''.join(rng.choice(_NAME_CHARS) for _ in range(rng.randint(1, 8)))
    if not name.endswith('\\'):   # unrepresentable: the backslash would escape the delimiter
      return name


def _escape(name, special):
  return ''.join('\\' + c if c in special else c for c in name)


def _random_point(rng):
  measurement = _random_name(rng)
  while measurement.startswith('#'):
    measurement = _random_name(rng)
  tags = {_random_name(rng): _random_name(rng) for _ in range(rng.randint(0, 3))}
  fields = {}
  for _ in range(rng.randint(1, 4)):
    kind = rng.randrange(5)
    if kind == 0:
      value = rng.choice([0.0, -0.0, 1.5, -2.25e-300, 1.7976931348623157e308, 5e-324,
                          rng.uniform(-1e6, 1e6), rng.random()])
    elif kind == 1:
      value = rng.choice([INT64_MIN, INT64_MAX, 0, rng.randint(-10**6, 10**6)])
    elif kind == 2:
      value = rng.choice([UINT64_MAX, rng.randint(0, 10**12)])
    elif kind == 3:
      value = rng.random() < 0.5
    else:
      value = ''.join(rng.choice(_NAME_CHARS + ' \t') for _ in range(rng.randint(0, 10)))
    fields[_random_name(rng)] = (kind, value)
  timestamp = rng.choice([None, 0, -1, INT64_MIN, INT64_MAX, rng.randint(-10**18, 10**18)])
  return measurement, tags, fields, timestamp


def _encode(measurement, tags, fields, timestamp, rng):
  """Write a point by the spec's escaping rules (the test's own, independent encoder)."""
  out = [_escape(measurement, ', ')]
  for key, value in tags.items():
    out.append(',%s=%s' % (_escape(key, ',= '), _escape(value, ',= ')))
  out.append(' ')
  encoded = []
  for key, (kind, value) in fields.items():
    if kind == 0:
      text = repr(value)
    elif kind == 1:
      text = '%di' % value
    elif kind == 2:
      text = '%du' % value
    elif kind == 3:
      text = rng.choice(['t', 'T', 'true', 'True', 'TRUE'] if value else
                        ['f', 'F', 'false', 'False', 'FALSE'])
    else:
      text = '"%s"' % value.replace('\\', '\\\\').replace('"', '\\"')
    encoded.append('%s=%s' % (_escape(key, ',= '), text))
  out.append(','.join(encoded))
  if timestamp is not None:
    out.append(' %d' % timestamp)
  return ''.join(out)


def test_random_points_round_trip():
  rng = random.Random(3)
  for _ in range(5000):
    measurement, tags, fields, timestamp = _random_point(rng)
    line = _encode(measurement, tags, fields, timestamp, rng)
    expected = point(measurement, tags, {k: v for k, (_, v) in fields.items()}, timestamp)
    try:
      got = parse_line(line + rng.choice(['', '\n', '\r\n']))
    except LineProtocolError as e:
      raise AssertionError('%r: %s' % (line, e)) from e
    assert_same(got, expected)
