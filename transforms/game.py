"""The RPG's events: names, parameter spellings and the `events` row.

Real game logs spell keys inconsistently (`Pos_X`, `pos_X`, the typo `Pox_Z`) and NPC
events put the map-plane coordinate in `pos_y`; this module absorbs all of that once.
"""
import hashlib
import json
import math
from typing import Any, Dict, Optional

from schemas import INT64_LIMIT
from transforms import timestamps
from transforms.deadletter import RecordError
from transforms.firebase import FlatEvent

START, END = 'START_SESSION', 'END_SESSION'
MOVE, ATTACK = 'PLAYER_MOVE', 'PLAYER_ATTACK'
NPC_CREATE, NPC_MOVE, NPC_DIE = 'NPC_CREATE', 'NPC_MOVE', 'NPC_DIE'
_ALIASES = {'END_SCENE': END}
GAME_EVENTS = frozenset([START, END, MOVE, ATTACK, NPC_CREATE, NPC_MOVE, NPC_DIE])

HEATMAP_LAYERS = {
    MOVE: 'player_move', ATTACK: 'player_attack', NPC_CREATE: 'npc_create',
    NPC_MOVE: 'npc_move', NPC_DIE: 'npc_die'}


_KEY_ALIASES = {'pox_z': 'pos_z', 'pox_x': 'pos_x', 'session_id': 'sessionid'}


def game_event_name(name: str) -> Optional[str]:
  """The canonical game event name, or None for events that are not the game's."""
  upper = name.strip().upper()
  upper = _ALIASES.get(upper, upper)
  return upper if upper in GAME_EVENTS else None


def normalise_params(params: Dict[str, Any]) -> Dict[str, Any]:
  """Case-insensitive keys with known typos fixed; the first spelling present wins."""
  out = {}
  for key, value in params.items():
    canonical = key.strip().lower()
    canonical = _KEY_ALIASES.get(canonical, canonical)
    if canonical not in out or out[canonical] is None:
      out[canonical] = value
  return out


def _number(params: Dict[str, Any], key: str) -> Optional[float]:
  value = params.get(key)
  if value is None:
    return None
  if isinstance(value, bool):
    raise RecordError('%s: expected a number, got %r' % (key, value))
  if isinstance(value, int) and abs(value) >= INT64_LIMIT:
    raise RecordError('%s: %d is out of range' % (key, value))
  if isinstance(value, (int, float)):
    number = float(value)
  elif isinstance(value, str):
    try:
      number = float(value.strip())
    except ValueError:
      raise RecordError('%s: expected a number, got %r' % (key, value)) from None
  else:
    raise RecordError('%s: expected a number, got %r' % (key, value))
  if not math.isfinite(number):
    raise RecordError('%s: expected a finite number, got %r' % (key, value))
  return number


def _integer(params: Dict[str, Any], key: str) -> Optional[int]:
  """A whole number within BigQuery's INT64; '12', 12.0 and 12 are all 12."""
  value = params.get(key)
  if isinstance(value, int) and not isinstance(value, bool):
    if abs(value) >= INT64_LIMIT:
      raise RecordError('%s: %d is out of range' % (key, value))
    return value
  number = _number(params, key)
  if number is None:
    return None
  if not number.is_integer():
    raise RecordError('%s: expected an integer, got %r' % (key, value))
  if abs(number) >= INT64_LIMIT:
    raise RecordError('%s: %r is out of range' % (key, value))
  return int(number)


def _age(params: Dict[str, Any]) -> Optional[int]:
  """Age is survey input: a value that is not a whole number is unknown, not an error."""
  try:
    return _integer(params, 'age')
  except RecordError:
    return None


def _sex(value: Any) -> Optional[str]:
  text = str(value).strip().lower() if value is not None else ''
  if text in ('true', 'male', 'm', 'man'):
    return 'male'
  if text in ('false', 'female', 'f', 'woman'):
    return 'female'
  return None


def _session_id(params: Dict[str, Any]) -> str:
  value = params.get('sessionid')
  if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
    raise RecordError('missing sessionid' if value is None else
                      'sessionid: expected a string, got %r' % (value,))
  text = str(value).strip()
  if not text:
    raise RecordError('missing sessionid')
  return text


def _npc_id(value: Any) -> Optional[str]:
  if value is None:
    return None
  if isinstance(value, float) and value.is_integer():
    value = int(value)
  if isinstance(value, (dict, list, bool)):
    raise RecordError('npc_id: expected an id, got %r' % (value,))
  return str(value)


def event_row(event: FlatEvent, name: str) -> Dict[str, Any]:
  """A game event -> its `events` row. Raises RecordError for unusable values."""
  params = normalise_params(event.params)
  session_id = _session_id(params)
  z = _number(params, 'pos_z')
  if z is None:
    z = _number(params, 'pos_y')
  return {
      'event_time': timestamps.micros_to_rfc3339(event.micros),
      'event_name': name,
      'session_id': session_id,
      'user_id': event.user_pseudo_id or event.user_id,
      'npc_id': _npc_id(params.get('npc_id')),
      'npc_type': None if params.get('type') is None else str(params['type']),
      'x': _number(params, 'pos_x'),
      'z': z,
      'damage': _number(params, 'damage'),
      'life': _number(params, 'life'),
      'score': _integer(params, 'score'),
      'age': _age(params),
      'sex': _sex(params.get('sex')),
      'platform': event.platform,
      'country': event.country,
  }


def duplicate_key(event: FlatEvent, name: str, session_id: str) -> str:
  """Same session, name, time and parameters: the same event delivered twice."""
  params = json.dumps(normalise_params(event.params), sort_keys=True, default=str)
  raw = '%s\x00%s\x00%d\x00%s' % (session_id, name, event.micros, params)
  return hashlib.blake2b(raw.encode('utf-8'), digest_size=16).hexdigest()


def heatmap_cell(row: Dict[str, Any], cell_size: float):
  """(layer, cell_x, cell_z) for events placed on the map, else None."""
  layer = HEATMAP_LAYERS.get(row['event_name'])
  if layer is None or row['x'] is None or row['z'] is None:
    return None
  cell_x, cell_z = math.floor(row['x'] / cell_size), math.floor(row['z'] / cell_size)
  if abs(cell_x) >= INT64_LIMIT or abs(cell_z) >= INT64_LIMIT:
    return None  # off any map: the event stays in `events`, it just has no cell
  return layer, cell_x, cell_z


def age_group(age: Optional[int]) -> Optional[int]:
  if age is None or not 0 <= age <= 120:
    return None
  return age // 10 * 10
