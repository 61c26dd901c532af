"""split_json_records: one chunk per record, whatever layout the file was saved in.

The splitter only finds record boundaries; validity is decided by the parse step. So for a
valid record we check that `json.loads(chunk.text)` gives the record back, and for a corrupt
one that it is exactly one chunk (which then fails to parse) and that its neighbours are intact.
"""
import json

import pytest

from transforms.jsonsplit import split_json_records


def lines_of(text):
  """The lines a file reader yields: split after each '\\n', line ends kept."""
  parts = text.split('\n')
  return [p + '\n' for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def split(text, **kwargs):
  return list(split_json_records(lines_of(text), **kwargs))


def parsed(chunks):
  """[(start line, JSON value)] for chunks that must all be valid records."""
  for chunk in chunks:
    assert chunk.error is None, chunk
  return [(chunk.line, json.loads(chunk.text)) for chunk in chunks]


def not_json(text):
  with pytest.raises(ValueError):
    json.loads(text)
  return True


# --- newline-delimited JSON ---------------------------------------------------------------

def test_ndjson_with_lf_line_ends():
  chunks = split('{"id": 1, "name": "a"}\n{"id": 2, "tags": [1, 2]}\n{"id": 3}\n')
  assert parsed(chunks) == [
      (1, {'id': 1, 'name': 'a'}), (2, {'id': 2, 'tags': [1, 2]}), (3, {'id': 3})]


def test_ndjson_with_crlf_line_ends_and_blank_lines():
  chunks = split('{"id": 1}\r\n\r\n   \r\n{"id": 2}\r\n\n{"id": 3}')
  assert parsed(chunks) == [(1, {'id': 1}), (4, {'id': 2}), (6, {'id': 3})]
  assert [c.text for c in chunks] == ['{"id": 1}', '{"id": 2}', '{"id": 3}']


def test_utf8_bom_on_the_first_line_is_dropped():
  chunks = split('\ufeff{"id": 1, "city": "Tōkyō"}\n{"id": 2}\n')
  assert parsed(chunks) == [(1, {'id': 1, 'city': 'Tōkyō'}), (2, {'id': 2})]
  assert chunks[0].text.startswith('{')


def test_utf8_bom_before_a_pretty_printed_array():
  chunks = split('\ufeff[\n  {"id": 1},\n  {"id": 2}\n]\n')
  assert parsed(chunks) == [(2, {'id': 1}), (3, {'id': 2})]


# --- pretty-printed values -----------------------------------------------------------------

def test_one_pretty_printed_object_spanning_lines_is_one_chunk():
  record = {'id': 7, 'user': {'name': 'Ann', 'tags': ['x', 'y']}, 'params': [{'k': 1}]}
  pretty = json.dumps(record, indent=2)
  assert pretty.count('\n') > 5
  chunks = split('{"id": 6}\n' + pretty + '\n{"id": 8}\n')
  assert parsed(chunks) == [(1, {'id': 6}), (2, record), (2 + pretty.count('\n') + 1, {'id': 8})]


def test_top_level_pretty_printed_array_emits_each_element_at_its_start_line():
  text = (
      '[\n'                      # 1
      '  {\n'                    # 2
      '    "id": 1,\n'           # 3
      '    "pos": [1.5, 2]\n'    # 4
      '  },\n'                   # 5
      '  {"id": 2},\n'           # 6
      '  {\n'                    # 7
      '    "id": 3\n'            # 8
      '  }\n'                    # 9
      ']\n'                      # 10
      '{"id": 4}\n')             # 11: NDJSON after the array still splits per line
  assert parsed(split(text)) == [
      (2, {'id': 1, 'pos': [1.5, 2]}), (6, {'id': 2}), (7, {'id': 3}), (11, {'id': 4})]


def test_one_line_array_elements_of_any_type_are_separate_chunks():
  chunks = split('[{"a": 1}, 2, "x", [3, 4], null]\n{"b": 5}\n')
  assert parsed(chunks) == [
      (1, {'a': 1}), (1, 2), (1, 'x'), (1, [3, 4]), (1, None), (2, {'b': 5})]


def test_object_pretty_printed_with_indent_zero_is_one_chunk():
  record = {'a': [{'x': 1}, {'y': 2}]}
  assert parsed(split(json.dumps(record, indent=0) + '\n')) == [(1, record)]


# --- concatenated values -------------------------------------------------------------------

def test_concatenated_values_on_one_line_with_and_without_space():
  chunks = split('{"id": 1}{"id": 2}\n{"id": 3} {"id": 4}\n{"id": 5}{"id": \n6}\n')
  assert parsed(chunks) == [
      (1, {'id': 1}), (1, {'id': 2}), (2, {'id': 3}), (2, {'id': 4}), (3, {'id': 5}),
      (3, {'id': 6})]


def test_braces_brackets_and_escaped_quotes_inside_strings_do_not_confuse_the_splitter():
  text = ('{"a": "a\\"}{"}{"b": "[[{"}\n'            # line 1: two records
          '{"c": "\\\\"} {"d": "x]y}"}\n'             # line 2: escaped backslash, then '}'
          '{\n  "e": "}{\\"",\n  "f": "]["\n}\n'      # lines 3-6: pretty, braces in strings
          '{"g": 1}\n')                               # line 7
  assert parsed(split(text)) == [
      (1, {'a': 'a"}{'}), (1, {'b': '[[{'}), (2, {'c': '\\'}), (2, {'d': 'x]y}'}),
      (3, {'e': '}{"', 'f': ']['}), (7, {'g': 1})]


# --- non-object values and garbage ---------------------------------------------------------

def test_non_object_scalars_are_chunks():
  chunks = split('42\n"hello"\n{"id": 1}\n-1.5e3\n')
  assert parsed(chunks) == [(1, 42), (2, 'hello'), (3, {'id': 1}), (4, -1500.0)]


def test_a_garbage_line_is_one_chunk_and_its_neighbours_parse():
  chunks = split('{"id": 1}\nthis is not {"json": 1} at all\n{"id": 2}\n')
  assert [(c.line, c.text) for c in chunks] == [
      (1, '{"id": 1}'), (2, 'this is not {"json": 1} at all'), (3, '{"id": 2}')]
  assert not_json(chunks[1].text)
  assert parsed([chunks[0], chunks[2]]) == [(1, {'id': 1}), (3, {'id': 2})]


# --- corrupt records -----------------------------------------------------------------------

def test_record_cut_by_a_stray_newline_inside_a_string_is_exactly_one_chunk():
  text = ('{"id": 1}\n'
          '{"id": 2, "msg": "hel\n'
          'lo", "n": 5}\n'
          '{"id": 3}\n')
  chunks = split(text)
  assert [(c.line, c.text) for c in chunks] == [
      (1, '{"id": 1}'), (2, '{"id": 2, "msg": "hel\nlo", "n": 5}'), (4, '{"id": 3}')]
  assert not_json(chunks[1].text)  # a raw newline in a string: the parse step dead-letters it
  assert parsed([chunks[0], chunks[2]]) == [(1, {'id': 1}), (4, {'id': 3})]


def test_truncated_record_followed_by_a_record_at_column_zero():
  chunks = split('{"id": 1}\n{"id": 2, "name": \n{"id": 3}\n{"id": 4}\n')
  assert [(c.line, c.text) for c in chunks] == [
      (1, '{"id": 1}'), (2, '{"id": 2, "name":'), (3, '{"id": 3}'), (4, '{"id": 4}')]
  assert chunks[1].error is not None
  assert chunks[1].error.startswith('truncated record')
  assert not_json(chunks[1].text)
  assert parsed([chunks[0]] + chunks[2:]) == [(1, {'id': 1}), (3, {'id': 3}), (4, {'id': 4})]


def test_truncated_record_with_an_open_string_followed_by_a_record():
  chunks = split('{"id": 1, "name": "An\n{"id": 2}\n')
  assert [(c.line, c.text) for c in chunks] == [(1, '{"id": 1, "name": "An'), (2, '{"id": 2}')]
  assert chunks[0].error.startswith('truncated record')
  assert parsed(chunks[1:]) == [(2, {'id': 2})]


def test_truncated_record_at_end_of_file_is_its_own_chunk():
  chunks = split('{"id": 1}\n{"id": 2}\n{"id": 3, "pos": [1.5,')
  assert [(c.line, c.text) for c in chunks] == [
      (1, '{"id": 1}'), (2, '{"id": 2}'), (3, '{"id": 3, "pos": [1.5,')]
  assert not_json(chunks[2].text)
  assert parsed(chunks[:2]) == [(1, {'id': 1}), (2, {'id': 2})]


def test_truncated_pretty_record_at_end_of_file_keeps_all_its_lines():
  chunks = split('{"id": 1}\n{\n  "id": 2,\n  "user": {\n    "name": "x"\n')
  assert [(c.line, c.text) for c in chunks] == [
      (1, '{"id": 1}'), (2, '{\n  "id": 2,\n  "user": {\n    "name": "x"')]
  assert not_json(chunks[1].text)


def test_max_record_chars_turns_a_huge_unterminated_record_into_an_error_chunk():
  text = ('[\n'                                 # 1
          '  {"id": 1, "note": "never closed,\n'  # 2: opens a string that never ends
          '  {"id": 2},\n'                      # 3
          '  {"id": 3},\n'                      # 4
          '  {"id": 4},\n'                      # 5
          '  {"id": 5}\n'                       # 6
          ']\n'
          '{"id": 6}\n')                        # 8
  # Without a limit the open string swallows every indented record up to the next one at
  # column 0.
  assert [c.line for c in split(text)] == [2, 8]
  chunks = split(text, max_record_chars=40)
  assert chunks[0].line == 2
  assert chunks[0].error == 'record exceeds 40 characters'
  assert chunks[0].text.startswith('{"id": 1, "note": "never closed,')
  assert len(chunks[0].text) < 80
  assert parsed(chunks[1:]) == [(4, {'id': 3}), (5, {'id': 4}), (6, {'id': 5}), (8, {'id': 6})]


def test_values_nested_deeper_than_the_limit_are_refused_not_a_crash():
  from transforms.jsonsplit import MAX_DEPTH, loads
  ok = '[' * MAX_DEPTH + ']' * MAX_DEPTH
  assert loads(ok) is not None
  for depth in (MAX_DEPTH + 1, 600, 100_000):
    deep = '{"a": ' * depth + '1' + '}' * depth
    with pytest.raises(ValueError, match='nested deeper than %d' % MAX_DEPTH):
      loads(deep)
  # Brackets inside strings are not nesting.
  assert loads(json.dumps({'s': '[' * 500})) == {'s': '[' * 500}
  lines = ['{"device_id": "d"}', '{"a": ' * 600 + '1' + '}' * 600, '{"b": 2}']
  chunks = list(split_json_records(lines))
  assert [(c.line, c.parsed) for c in chunks] == [(1, True), (2, False), (3, True)]
