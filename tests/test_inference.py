"""image_inference's pure pieces: --device resolution, top-k, and the evaluation numbers on a
confusion matrix checked by hand."""
import pytest

from transforms import inference
from transforms.deadletter import RecordError
from transforms.inference import DeviceError, NotAnImageEvent


def test_device_auto_uses_a_gpu_when_one_is_visible():
  assert inference.resolve_device('auto', []) == 'cpu'
  assert inference.resolve_device('auto', ['/physical_device:GPU:0']) == 'gpu'
  assert inference.resolve_device('cpu', ['/physical_device:GPU:0']) == 'cpu'
  assert inference.resolve_device('gpu', ['/physical_device:GPU:0']) == 'gpu'


def test_device_gpu_without_a_gpu_fails_fast_with_what_to_check():
  with pytest.raises(DeviceError, match='--device gpu, but TensorFlow sees no GPU'):
    inference.resolve_device('gpu', [])
  with pytest.raises(ValueError, match='--device must be one of auto|cpu|gpu'):
    inference.resolve_device('tpu', [])


def test_top_k_is_highest_first_with_ties_by_class_id():
  labels = ['ann', 'bob', 'cy', 'dee']
  assert inference.top_k([0.1, 0.4, 0.1, 0.4], labels, 3) == [
      ('bob', 0.4), ('dee', 0.4), ('ann', 0.1)]
  assert inference.top_k([0.7, 0.3], ['ann', 'bob'], 5) == [('ann', 0.7), ('bob', 0.3)]
  assert inference.top_k([[0.25, 0.75]], ['ann', 'bob'], 1) == [('bob', 0.75)]  # (1, n) too


@pytest.mark.parametrize('scores, labels, k, message', [
    ([0.5, 0.5], ['ann'], 1, 'the model has 2 outputs but there are 1 labels'),
    ([0.5, 0.5], ['ann', 'bob'], 0, 'k must be >= 1'),
    ([float('nan'), 0.5], ['ann', 'bob'], 1, 'non-finite score'),
])
def test_top_k_refuses_what_cannot_be_ranked(scores, labels, k, message):
  with pytest.raises(ValueError, match=message):
    inference.top_k(scores, labels, k)


def test_evaluation_of_a_hand_checked_confusion_matrix():
  # truth \ predicted   ann  bob  cy
  #   ann                 3    1   0
  #   bob                 0    2   2
  #   cy                  0    0   0   (never in the data)
  #   dee (not a model label)  1   0   0
  pairs = ([('ann', 'ann')] * 3 + [('ann', 'bob')] + [('bob', 'bob')] * 2
           + [('bob', 'cy')] * 2 + [('dee', 'ann')])
  confusion = inference.add_pairs({}, pairs)
  rows = {r['label']: r for r in inference.evaluation_rows(confusion, ['ann', 'bob', 'cy'])}
  assert list(rows) == ['ann', 'bob', 'cy', 'dee']
  # ann: 3 right of 4 predicted ann (3 + dee's 1), of 4 truly ann.
  assert rows['ann'] == {'label': 'ann', 'precision': 0.75, 'recall': 0.75, 'support': 4,
                         'predicted': 4, 'images': 9, 'accuracy': 0.555556}
  # bob: 2 right of 3 predicted bob, of 4 truly bob.
  assert (rows['bob']['precision'], rows['bob']['recall'], rows['bob']['support']) == (
      0.666667, 0.5, 4)
  # cy: predicted twice, never right, never true: precision 0, recall undefined.
  assert (rows['cy']['precision'], rows['cy']['recall'], rows['cy']['support']) == (
      0.0, None, 0)
  # dee: never predicted (not a model label): precision undefined, recall 0.
  assert (rows['dee']['precision'], rows['dee']['recall'], rows['dee']['support']) == (
      None, 0.0, 1)
  assert inference.confusion_rows(confusion) == [
      {'true_label': 'ann', 'predicted_label': 'ann', 'count': 3},
      {'true_label': 'ann', 'predicted_label': 'bob', 'count': 1},
      {'true_label': 'bob', 'predicted_label': 'bob', 'count': 2},
      {'true_label': 'bob', 'predicted_label': 'cy', 'count': 2},
      {'true_label': 'dee', 'predicted_label': 'ann', 'count': 1},
  ]


def test_evaluation_of_nothing():
  assert inference.evaluation_rows({}, ['ann']) == [
      {'label': 'ann', 'precision': None, 'recall': None, 'support': 0, 'predicted': 0,
       'images': 0, 'accuracy': None}]
  assert inference.confusion_rows({}) == []


@pytest.mark.parametrize('payload, attributes, expected', [
    (b'gs://bkt/faces/a.jpg', None, ('gs://bkt/faces/a.jpg', None)),
    (' gs://bkt/a.jpg\n', None, ('gs://bkt/a.jpg', None)),
    (b'{"uri": "gs://bkt/a.jpg", "label": "ann"}', None, ('gs://bkt/a.jpg', 'ann')),
    (b'{"bucket": "bkt", "name": "dir/a b.jpg", "size": "10"}', None,
     ('gs://bkt/dir/a b.jpg', None)),
    (b'{"kind": "storage#object"}', {'bucketId': 'bkt', 'objectId': 'x/y.jpg',
                                      'eventType': 'OBJECT_FINALIZE'}, ('gs://bkt/x/y.jpg', None)),
])
def test_messages_name_images_in_every_producer_form(payload, attributes, expected):
  assert inference.uri_from_message(payload, attributes) == expected


def test_a_notification_of_anything_but_a_new_object_is_not_an_image_event():
  with pytest.raises(NotAnImageEvent, match='OBJECT_DELETE of gs://bkt/x.jpg'):
    inference.uri_from_message(b'{}', {'bucketId': 'bkt', 'objectId': 'x.jpg',
                                       'eventType': 'OBJECT_DELETE'})


@pytest.mark.parametrize('payload, message', [
    (b'\xff\xfe', 'not UTF-8'),
    (b'', 'does not name an image'),
    (b'https://example.com/a.jpg', 'does not name an image'),
    (b'{"uri": ', 'not valid JSON'),
    (b'{"path": "gs://b/a.jpg"}', 'has no "uri"'),
    (b'{"uri": "gs://b/a.jpg", "label": 3}', '"label" must be text'),
])
def test_unusable_messages_are_record_errors(payload, message):
  with pytest.raises(RecordError, match=message):
    inference.uri_from_message(payload)
