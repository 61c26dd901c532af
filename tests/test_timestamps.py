"""Event times in (any epoch unit, RFC 3339), exact microseconds and RFC 3339 UTC out."""
import pytest

from transforms.timestamps import epoch_micros, micros_to_rfc3339, parse_rfc3339, to_rfc3339

T0 = 1539158400_000000  # 2018-10-10T08:00:00Z


@pytest.mark.parametrize('value,expected', [
    # integers, unit by magnitude
    (1539158400, T0),
    (1539158400123, T0 + 123000),
    (1539158400123456, T0 + 123456),
    (1539158400123456789, T0 + 123456),
    (0, 0),
    (-1, -1_000_000),
    # numeric strings, same units
    ('1539158400', T0),
    ('1539158400123', T0 + 123000),
    (' 1539158400123456 ', T0 + 123456),
    ('1539158400123456789', T0 + 123456),
    ('-1539158400', -T0),
    # floats
    (1539158400.5, T0 + 500000),
    (1539158400.123456, T0 + 123456),
    (1539158400123.456, T0 + 123456),
    (1539158400.0, T0),
    ('1539158400.25', T0 + 250000),
    # RFC 3339
    ('2018-10-10T08:00:00Z', T0),
    ('2018-10-10T08:00:00.123Z', T0 + 123000),
    ('2018-10-10T08:00:00.123456Z', T0 + 123456),
    ('2018-10-10T08:00:00.123456789Z', T0 + 123456),
    ('2018-10-10t08:00:00z', T0),
    ('2018-10-10T17:00:00+09:00', T0),
    ('2018-10-10T03:30:00-04:30', T0),
    ('2018-10-10T08:00:00+00:00', T0),
    ('2018-10-10 08:00:00', T0),
    ('1969-12-31T23:59:59.999999Z', -1),
])
def test_epoch_micros(value, expected):
  assert epoch_micros(value) == expected


@pytest.mark.parametrize('value,expected', [
    ('2018-10-10T17:00:00.123+09:00', T0 + 123000),
    ('2018-10-10T17:00:00.123456+09:00', T0 + 123456),
    ('2018-10-10T17:00:00.123456789+09:00', T0 + 123456),
    ('2018-10-10T03:00:00.5-05:00', T0 + 500000),
])
def test_epoch_micros_fraction_with_offset(value, expected):
  assert epoch_micros(value) == expected


@pytest.mark.parametrize('value', [
    True, False, None, 'soon', '', '2018-13-01T00:00:00Z', float('nan'), float('inf'), [1], {}])
def test_epoch_micros_rejects_what_is_not_a_time(value):
  with pytest.raises(ValueError):
    epoch_micros(value)


def test_parse_rfc3339_returns_epoch_seconds():
  assert parse_rfc3339('2018-10-10T08:00:00Z') == 1539158400.0
  assert parse_rfc3339('2018-10-10T08:00:00.25Z') == 1539158400.25
  assert parse_rfc3339('2018-10-10T17:00:00+09:00') == 1539158400.0


@pytest.mark.parametrize('micros,text', [
    (T0 + 123456, '2018-10-10T08:00:00.123456Z'),
    (T0, '2018-10-10T08:00:00.000000Z'),
    (0, '1970-01-01T00:00:00.000000Z'),
    (-1, '1969-12-31T23:59:59.999999Z'),
    (None, None),
])
def test_micros_to_rfc3339(micros, text):
  assert micros_to_rfc3339(micros) == text


def test_to_rfc3339_from_epoch_seconds():
  assert to_rfc3339(1539158400.5) == '2018-10-10T08:00:00.500000Z'
  assert to_rfc3339(1539158400.123456) == '2018-10-10T08:00:00.123456Z'
  assert to_rfc3339(1539158400) == '2018-10-10T08:00:00.000000Z'
  assert to_rfc3339(None) is None


@pytest.mark.parametrize('micros', [
    T0 + 123456, T0 + 1, T0 + 999999, 0, 1, -1, 999999,
    946684799_999999,        # 1999-12-31T23:59:59.999999Z
    2147483647_000001,       # 2038-01-19T03:14:07.000001Z
    4102444799_999999,       # 2099-12-31T23:59:59.999999Z
] + [T0 + k * 86_400_123_457 for k in range(1, 200, 7)])
def test_rfc3339_round_trips_exactly(micros):
  text = micros_to_rfc3339(micros)
  assert epoch_micros(text) == micros
  assert micros_to_rfc3339(epoch_micros(text)) == text


@pytest.mark.parametrize('text', ['2500-01-01T00:00:00.000001Z', '9999-12-31T23:59:59.999999Z'])
def test_rfc3339_round_trips_exactly_far_in_the_future(text):
  assert micros_to_rfc3339(epoch_micros(text)) == text


def test_micros_to_rfc3339_pads_the_year_to_four_digits():
  assert micros_to_rfc3339(-62135596800_000000) == '0001-01-01T00:00:00.000000Z'
