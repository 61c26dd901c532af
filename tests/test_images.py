"""Image decoding, hashing and cropping: every test image is generated in memory."""
import io
import itertools
import random
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile, ImageOps

from transforms import images
from transforms.deadletter import RecordError


def encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
  out = io.BytesIO()
  im.save(out, fmt, **kwargs)
  return out.getvalue()


def pixels(im: Image.Image) -> np.ndarray:
  return np.asarray(im).astype(np.int16)


def scene(seed: int, size=(320, 240)) -> Image.Image:
  """A structured picture: gradient background, overlapping shapes, a little noise."""
  rng = np.random.default_rng(seed)
  w, h = size
  yy, xx = np.mgrid[0:h, 0:w]
  angle = rng.uniform(0, 2 * np.pi)
  ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / max(w, h)
  arr = np.stack([ramp * rng.uniform(60, 200) + rng.uniform(0, 60) for _ in range(3)], -1)
  im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), 'RGB')
  draw = ImageDraw.Draw(im)
  for _ in range(12):
    x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
    x1, y1 = x0 + rng.uniform(0.1, 0.6) * w, y0 + rng.uniform(0.1, 0.6) * h
    color = tuple(int(c) for c in rng.integers(0, 256, 3))
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=color)
  noisy = np.asarray(im, dtype=np.float64) + rng.normal(0, 8, (h, w, 3))
  return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), 'RGB')


def png_header(width: int, height: int) -> bytes:
  """A PNG whose IHDR claims width x height RGB, with one tiny IDAT: a bomb's header."""
  def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
  ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
  return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64))
          + chunk(b'IEND', b''))


# --- decode: colour modes ------------------------------------------------------------------

def test_decode_reports_size_format_and_keeps_rgb_pixels():
  im = scene(1, (64, 48))
  decoded = images.decode(encode(im, 'PNG'))
  assert (decoded.width, decoded.height, decoded.format) == (64, 48, 'PNG')
  assert (decoded.exif_rotated, decoded.frames) == (False, 1)
  assert decoded.image.mode == 'RGB' and decoded.image.size == (64, 48)
  assert np.array_equal(pixels(decoded.image), pixels(im))
  assert decoded.image.info == {}


def test_grayscale_becomes_gray_rgb():
  decoded = images.decode(encode(Image.new('L', (4, 4), 77), 'PNG'))
  assert decoded.image.getpixel((1, 1)) == (77, 77, 77)


def test_bilevel_becomes_black_and_white():
  im = Image.new('1', (4, 4), 0)
  im.putpixel((0, 0), 1)
  decoded = images.decode(encode(im, 'BMP'))
  assert decoded.image.getpixel((0, 0)) == (255, 255, 255)
  assert decoded.image.getpixel((1, 0)) == (0, 0, 0)


def test_gray_with_alpha_is_composited_on_white():
  im = Image.new('LA', (2, 1), (0, 255))
  im.putpixel((1, 0), (0, 0))
  out = images.decode(encode(im, 'PNG')).image
  assert out.getpixel((0, 0)) == (0, 0, 0)
  assert out.getpixel((1, 0)) == (255, 255, 255)


def test_half_transparent_red_over_white_is_pink_not_dark():
  out = images.decode(encode(Image.new('RGBA', (3, 3), (255, 0, 0, 128)), 'PNG')).image
  assert np.abs(np.subtract(out.getpixel((1, 1)), (255, 128, 128))).max() <= 1
  clear = images.decode(encode(Image.new('RGBA', (3, 3), (0, 0, 0, 0)), 'PNG')).image
  assert clear.getpixel((0, 0)) == (255, 255, 255)


def _palette_image() -> Image.Image:
  im = Image.new('P', (4, 4), 1)
  im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (253 * 3))
  im.putpixel((0, 0), 2)
  return im


def test_palette_without_transparency():
  out = images.decode(encode(_palette_image(), 'PNG')).image
  assert out.getpixel((0, 0)) == (0, 0, 255)
  assert out.getpixel((3, 3)) == (255, 0, 0)


@pytest.mark.parametrize('fmt', ['PNG', 'GIF'])
def test_palette_transparency_becomes_white(fmt):
  out = images.decode(encode(_palette_image(), fmt, transparency=2)).image
  assert out.getpixel((0, 0)) == (255, 255, 255)
  assert out.getpixel((3, 3)) == (255, 0, 0)


@pytest.mark.parametrize('mode,color,other', [('L', 0, 50), ('RGB', (1, 2, 3), (50, 0, 0))])
def test_transparent_colour_key_becomes_white(mode, color, other):
  im = Image.new(mode, (4, 4), color)
  im.putpixel((1, 1), other)
  out = images.decode(encode(im, 'PNG', transparency=color)).image
  assert out.getpixel((0, 0)) == (255, 255, 255)
  assert out.getpixel((1, 1)) == Image.new(mode, (1, 1), other).convert('RGB').getpixel((0, 0))


def test_cmyk_tiff_and_adobe_inverted_cmyk_jpeg():
  cmyk = Image.new('CMYK', (16, 16), (0, 255, 255, 0))  # red
  assert images.decode(encode(cmyk, 'TIFF')).image.getpixel((8, 8)) == (255, 0, 0)
  jpeg = encode(cmyk, 'JPEG', quality=95)  # Pillow writes an Adobe marker: inverted CMYK
  with Image.open(io.BytesIO(jpeg)) as raw:
    assert raw.mode == 'CMYK' and 'adobe' in raw.info
  decoded = images.decode(jpeg)
  assert decoded.format == 'JPEG'
  assert np.abs(np.subtract(decoded.image.getpixel((8, 8)), (255, 0, 0))).max() <= 8


@pytest.mark.parametrize('fmt', ['PNG', 'TIFF'])
def test_16_bit_gray_is_scaled_not_clipped(fmt):
  im = Image.fromarray(np.array([[65535, 32768, 257, 0]], dtype=np.uint16))
  assert im.mode == 'I;16'
  out = images.decode(encode(im, fmt)).image
  assert [out.getpixel((x, 0)) for x in range(4)] == [
      (255,) * 3, (128,) * 3, (1,) * 3, (0,) * 3]


def test_32_bit_int_is_taken_as_16_bit():
  im = Image.fromarray(np.array([[65535, 32768, -5, 100000]], dtype=np.int32))
  assert im.mode == 'I'
  out = images.to_rgb(im)
  assert [out.getpixel((x, 0))[0] for x in range(4)] == [255, 128, 0, 255]


def test_float_images_unit_range_and_8_bit_range():
  unit = Image.fromarray(np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32))
  assert unit.mode == 'F'
  assert [images.to_rgb(unit).getpixel((x, 0))[0] for x in range(4)] == [0, 128, 255, 0]
  wide = Image.fromarray(np.array([[0.0, 100.4, 300.0, -3.0]], dtype=np.float32))
  assert [images.to_rgb(wide).getpixel((x, 0))[0] for x in range(4)] == [0, 100, 255, 0]
  tiff = images.decode(encode(unit, 'TIFF')).image
  assert tiff.getpixel((2, 0)) == (255, 255, 255)


def test_lab_tiff_goes_through_a_colour_transform():
  out = images.decode(encode(Image.new('LAB', (2, 2), (128, 128, 128)), 'TIFF')).image
  r, g, b = out.getpixel((0, 0))
  assert r == g == b and 110 <= r <= 130  # mid grey, not the raw channel bytes


@pytest.mark.parametrize('mode', ['1', 'L', 'LA', 'P', 'PA', 'RGB', 'RGBA', 'RGBa', 'RGBX',
                                  'CMYK', 'YCbCr', 'HSV', 'LAB', 'I', 'I;16', 'I;16B', 'F'])
def test_to_rgb_handles_every_mode(mode):
  out = images.to_rgb(Image.new(mode, (3, 2)))
  assert out.mode == 'RGB' and out.size == (3, 2)


# --- decode: orientation and animation -------------------------------------------------------

# The stored pixels of an upright picture, for each EXIF orientation.
_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _with_orientation(upright: Image.Image, orientation: int) -> Image.Image:
  method = _STORE[orientation]  # FLIP_LEFT_RIGHT is 0: compare with None
  stored = upright.copy() if method is None else upright.transpose(method)
  exif = Image.Exif()
  exif[0x0112] = orientation
  stored.info['exif'] = exif.tobytes()
  return stored


@pytest.mark.parametrize('orientation', range(1, 9))
def test_every_exif_orientation_gives_the_upright_pixels(orientation):
  upright = scene(orientation, (40, 24))
  stored = _with_orientation(upright, orientation)
  # The test's table is right by Pillow's own reading of the tag.
  assert np.array_equal(pixels(ImageOps.exif_transpose(stored)), pixels(upright))
  decoded = images.decode(encode(stored, 'PNG', exif=stored.info['exif']))
  assert decoded.exif_rotated == (orientation != 1)
  assert (decoded.width, decoded.height) == (40, 24)
  assert np.array_equal(pixels(decoded.image), pixels(upright))
  assert images.pixel_sha256(decoded.image) == images.pixel_sha256(upright)


def test_exif_rotated_jpeg_is_upright():
  upright = scene(3, (64, 32))
  stored = _with_orientation(upright, 6)  # what a camera held upright writes
  data = encode(stored, 'JPEG', quality=95, exif=stored.info['exif'])
  decoded = images.decode(data)
  assert decoded.exif_rotated and (decoded.width, decoded.height) == (64, 32)
  with Image.open(io.BytesIO(data)) as raw:
    assert raw.size == (32, 64)
    expected = ImageOps.exif_transpose(raw).convert('RGB')
  assert np.array_equal(pixels(decoded.image), pixels(expected))


@pytest.mark.parametrize('value', [0, 9, 65535])
def test_out_of_range_orientation_is_ignored(value):
  exif = Image.Exif()
  exif[0x0112] = value
  decoded = images.decode(encode(scene(1, (8, 6)), 'PNG', exif=exif.tobytes()))
  assert not decoded.exif_rotated and decoded.image.size == (8, 6)


@pytest.mark.parametrize('fmt,name', [('GIF', 'GIF'), ('WEBP', 'WEBP'), ('PNG', 'PNG')])
def test_animation_gives_the_first_frame_and_the_frame_count(fmt, name):
  frames = [Image.new('RGB', (8, 8), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
  data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100,
                loop=0, lossless=True)
  decoded = images.decode(data)
  assert (decoded.format, decoded.frames) == (name, 3)
  assert decoded.image.getpixel((4, 4)) == (255, 0, 0)


# --- decode: refusals ------------------------------------------------------------------------

@pytest.mark.parametrize('data,reason', [
    (b'', 'not an image: empty'),
    (b'name,score\nada,3\n', 'not an image: text'),
    (b'<!DOCTYPE html>\r\n<html><head><title>404 Not Found</title></head></html>',
     'not an image: an HTML page'),
    (b'  <HTML><BODY>gone</BODY></HTML>', 'not an image: an HTML page'),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', 'not an image: XML'),
    (random.Random(7).randbytes(4096), 'not an image: unknown'),
    (b'GIF89a', 'corrupt image'),
])
def test_non_images_are_refused_with_a_reason(data, reason):
  with pytest.raises(RecordError, match=reason):
    images.decode(data)


@pytest.mark.parametrize('value', [None, 'a string', 12])
def test_non_bytes_are_refused(value):
  with pytest.raises(RecordError, match='expected bytes'):
    images.decode(value)


@pytest.mark.parametrize('fmt', ['JPEG', 'PNG', 'GIF', 'WEBP', 'TIFF', 'BMP'])
def test_truncated_files_are_refused(fmt):
  # Cut inside the pixel data. (A file that lost only its trailer, e.g. PNG's IEND, still
  # has every pixel and is accepted.)
  data = encode(scene(2, (120, 90)), fmt)
  for cut in (len(data) // 2, len(data) * 9 // 10):
    with pytest.raises(RecordError):
      images.decode(data[:cut])


def test_corrupt_png_data_is_refused():
  data = bytearray(encode(scene(2, (64, 64)), 'PNG'))
  data[len(data) // 2] ^= 0xFF  # CRC mismatch / bad deflate stream
  with pytest.raises(RecordError, match='corrupt image'):
    images.decode(bytes(data))


@pytest.mark.filterwarnings('ignore::UserWarning')  # Pillow's "Corrupt EXIF data" and such
def test_mutated_files_give_an_image_or_a_record_error_and_nothing_else():
  rng = random.Random(11)
  seeds = [encode(scene(4, (32, 24)), fmt) for fmt in ('JPEG', 'PNG', 'GIF', 'WEBP', 'TIFF')]
  outcomes = set()
  for _ in range(300):
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 6)):
      data[rng.randrange(len(data))] = rng.randrange(256)
    if rng.random() < 0.3:
      data = data[:rng.randrange(1, len(data))]
    try:
      outcomes.add(images.decode(bytes(data)).image.mode)
    except RecordError:
      outcomes.add('error')
  assert outcomes <= {'RGB', 'error'}


def test_files_over_max_bytes_are_refused():
  data = encode(scene(1, (32, 32)), 'PNG')
  with pytest.raises(RecordError, match='too large'):
    images.decode(data, max_bytes=len(data) - 1)


def test_formats_outside_the_list_are_refused():
  with pytest.raises(RecordError, match='not an image'):
    images.decode(encode(scene(1, (16, 16)), 'TGA'))


@pytest.mark.parametrize('width,height', [(100_000, 100_000), (9_000, 9_000)])
def test_decompression_bomb_is_refused_without_decoding(width, height):
  start = time.perf_counter()
  with pytest.raises(RecordError, match='decompression bomb'):
    images.decode(png_header(width, height))
  assert time.perf_counter() - start < 0.5


def test_small_compressible_image_above_max_pixels_is_refused():
  data = encode(Image.new('RGB', (400, 300), (9, 9, 9)), 'PNG')
  assert len(data) < 2000
  with pytest.raises(RecordError, match='decompression bomb.*120000 pixels > 100000'):
    images.decode(data, max_pixels=100_000)
  assert images.decode(data, max_pixels=120_000).width == 400


def test_pillow_limit_wins_when_lower_and_its_warning_becomes_a_record_error():
  assert Image.MAX_IMAGE_PIXELS < 10_000 * 10_000 < 2 * Image.MAX_IMAGE_PIXELS
  with pytest.warns(Image.DecompressionBombWarning):
    with pytest.raises(RecordError, match='decompression bomb'):
      images.decode(png_header(10_000, 10_000), max_pixels=10 ** 9)


def test_a_global_load_truncated_images_is_not_trusted(monkeypatch):
  monkeypatch.setattr(ImageFile, 'LOAD_TRUNCATED_IMAGES', True)
  with pytest.raises(RecordError, match='LOAD_TRUNCATED_IMAGES'):
    images.decode(encode(scene(1, (8, 8)), 'PNG'))


# --- pixel_sha256 ------------------------------------------------------------------------------

def test_pixel_sha256_is_the_same_across_lossless_formats():
  im = scene(5, (50, 40))
  hashes = {fmt: images.pixel_sha256(images.decode(encode(im, fmt)).image)
            for fmt in ('PNG', 'BMP', 'TIFF', 'PPM')}
  hashes['webp'] = images.pixel_sha256(images.decode(encode(im, 'WEBP', lossless=True)).image)
  assert set(hashes.values()) == {images.pixel_sha256(im)}
  assert len(images.pixel_sha256(im)) == 64


def test_pixel_sha256_changes_with_one_pixel_and_with_the_shape():
  im = scene(5, (50, 40))
  changed = im.copy()
  r, g, b = changed.getpixel((10, 10))
  changed.putpixel((10, 10), (r ^ 1, g, b))
  assert images.pixel_sha256(changed) != images.pixel_sha256(im)
  row = Image.frombytes('RGB', (6, 1), bytes(range(18)))
  column = Image.frombytes('RGB', (1, 6), bytes(range(18)))
  assert images.pixel_sha256(row) != images.pixel_sha256(column)


# --- phash ----------------------------------------------------------------------------------

def _jpeg(im: Image.Image, quality: int) -> Image.Image:
  return images.decode(encode(im, 'JPEG', quality=quality)).image


def _brighter(im: Image.Image, delta: int) -> Image.Image:
  return Image.fromarray(np.clip(pixels(im) + delta, 0, 255).astype(np.uint8), 'RGB')


_SCENES = [scene(seed) for seed in range(8)]


@pytest.mark.parametrize('change', [
    lambda im: _jpeg(im, 75),
    lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR),
    lambda im: _brighter(im, 10),
    lambda im: _brighter(im, -10),
    lambda im: _jpeg(im.resize((im.width // 2, im.height // 2)), 75),
], ids=['jpeg75', 'half-lanczos', 'half-bilinear', 'plus10', 'minus10', 'half-jpeg75'])
def test_phash_survives_re_encoding_resizing_and_brightness(change):
  distances = [images.hamming(images.phash(im), images.phash(change(im))) for im in _SCENES]
  assert max(distances) <= 4, distances


def test_phash_of_a_big_photo_matches_its_small_copy():
  big = scene(9, (1280, 960))  # box-reduced before the 32 x 32 resize
  small = big.resize((320, 240), Image.Resampling.LANCZOS)
  assert images.hamming(images.phash(big), images.phash(small)) <= 4


def test_phash_separates_unrelated_pictures():
  hashes = [images.phash(im) for im in _SCENES]
  distances = [images.hamming(a, b) for a, b in itertools.combinations(hashes, 2)]
  assert min(distances) > 20, sorted(distances)


def test_phash_layout():
  h = images.phash(_SCENES[0])
  assert 0 <= h < 1 << 64
  assert h >> 63 == 1  # the DC bit
  assert bin(h).count('1') == 32  # DC + the 31 AC terms above the median of 63
  assert images.phash(_SCENES[0].copy()) == h
  assert images.phash(Image.new('RGB', (30, 20), (90, 10, 200))) == 1 << 63  # flat: DC only
  assert images.phash(_SCENES[0].convert('L')) == images.phash(_SCENES[0].convert('L').convert('RGB'))


def test_phash_hex_and_hamming():
  assert images.phash_hex(0) == '0' * 16
  assert images.phash_hex(0xF0 << 56) == 'f000000000000000'
  with pytest.raises(RecordError):
    images.phash_hex(1 << 64)
  assert images.hamming(0b1011, 0b0110) == 3
  assert images.hamming(0, (1 << 64) - 1) == 64


# --- band_keys ------------------------------------------------------------------------------

def _flip(h: int, bits) -> int:
  for bit in bits:
    h ^= 1 << bit
  return h


@pytest.mark.parametrize('distance', [0, 1, 4, 8])
def test_band_keys_pigeonhole_finds_every_pair_within_the_distance(distance):
  rng = random.Random(distance)
  for _ in range(1000):
    a = rng.getrandbits(64)
    b = _flip(a, rng.sample(range(64), rng.randint(0, distance)))
    assert images.hamming(a, b) <= distance
    assert set(images.band_keys(a, distance + 1)) & set(images.band_keys(b, distance + 1))


def test_band_keys_bound_is_tight():
  # One flipped bit in each of d + 1 bands: distance d + 1 and no key in common.
  a = random.Random(3).getrandbits(64)
  b = _flip(a, [0, 16, 32, 48])
  assert images.hamming(a, b) == 4
  assert not set(images.band_keys(a, 4)) & set(images.band_keys(b, 4))
  assert set(images.band_keys(a, 5)) & set(images.band_keys(b, 5))


@pytest.mark.parametrize('bands', [1, 3, 5, 7, 64])
def test_band_keys_cover_all_bits(bands):
  h = random.Random(bands).getrandbits(64)
  keys = images.band_keys(h, bands)
  assert [k.split(':')[0] for k in keys] == ['b%d' % i for i in range(bands)]
  widths = [64 // bands + (1 if i < 64 % bands else 0) for i in range(bands)]
  rebuilt = 0
  for key, width in zip(keys, widths, strict=True):
    rebuilt = (rebuilt << width) | int(key.split(':')[1], 16)
  assert rebuilt == h
  assert images.band_keys(0x0123456789ABCDEF, 4) == ['b0:0123', 'b1:4567', 'b2:89ab', 'b3:cdef']


@pytest.mark.parametrize('bands', [0, 65])
def test_band_keys_refuses_impossible_band_counts(bands):
  with pytest.raises(ValueError):
    images.band_keys(1, bands)


# --- crop_box, crop_resize, to_jpeg, downscale ---------------------------------------------------

@pytest.mark.parametrize('box,margin,expected', [
    ((10, 20, 30, 60), 0.0, (10, 20, 30, 60)),  # inside
    ((10, 20, 30, 60), 0.25, (5, 10, 35, 70)),  # margin: a quarter of 20 x 40 each side
    ((10.4, 20.6, 29.2, 59.9), 0.0, (10, 20, 30, 60)),  # rounded outwards
    ((0, 0, 30, 40), 0.5, (0, 0, 45, 60)),  # at the top-left edge
    ((70, 40, 100, 80), 0.5, (55, 20, 100, 80)),  # at the bottom-right edge
    ((-10, 20, 30, 60), 0.0, (0, 20, 30, 60)),  # beyond the left
    ((10, -5, 30, 60), 0.0, (10, 0, 30, 60)),  # beyond the top
    ((80, 20, 130, 60), 0.0, (80, 20, 100, 60)),  # beyond the right
    ((10, 50, 30, 95), 0.0, (10, 50, 30, 80)),  # beyond the bottom
    ((-50, -50, 500, 500), 0.2, (0, 0, 100, 80)),  # larger than the image
    ((40, 40, 40, 40), 0.5, (40, 40, 41, 41)),  # zero-size: one pixel
    ((30, 60, 10, 20), 0.0, (10, 20, 30, 60)),  # corners swapped
    ((150, 10, 160, 20), 0.0, (99, 10, 100, 20)),  # wholly right: last column
    ((-30, -30, -10, -10), 0.0, (0, 0, 1, 1)),  # wholly above-left: corner pixel
    ((10, 100, 30, 120), 0.0, (10, 79, 30, 80)),  # wholly below: last row
])
def test_crop_box(box, margin, expected):
  result = images.crop_box(box, margin, 100, 80)
  assert result == expected
  assert all(isinstance(v, int) for v in result)
  left, top, right, bottom = result
  assert 0 <= left < right <= 100 and 0 <= top < bottom <= 80


@pytest.mark.parametrize('box', [(0, 0, float('nan'), 1), (0, 0, 1), ('a', 0, 1, 1), None])
def test_crop_box_refuses_bad_boxes(box):
  with pytest.raises(RecordError):
    images.crop_box(box, 0.1, 100, 80)


@pytest.mark.parametrize('box,expected', [
    ((40, 20, 60, 60), (30, 20, 70, 60)),  # tall: widened about the centre
    ((0, 30, 40, 40), (0, 15, 40, 55)),  # wide at the left edge: shifted in, not cut
    ((90, 0, 100, 30), (70, 0, 100, 30)),  # tall at the right edge
    ((10, 0, 90, 80), (10, 0, 90, 80)),  # already square
    ((0, 10, 100, 20), (10, 0, 90, 80)),  # wider than the image is tall: centre-cropped
])
def test_square_box(box, expected):
  assert images.square_box(box, 100, 80) == expected


def test_crop_resize_gives_a_square_of_the_requested_size():
  im = scene(6, (200, 150))
  for box in [(50, 40, 90, 120), (0, 0, 200, 30), (190, 140, 200, 150), (-20, -20, 10, 10)]:
    out = images.crop_resize(im, box, 96)
    assert out.size == (96, 96) and out.mode == 'RGB'
  flat = images.crop_resize(Image.new('RGB', (50, 50), (10, 200, 30)), (5, 5, 25, 45), 16)
  assert flat.getpixel((8, 8)) == (10, 200, 30)


def test_to_jpeg_is_deterministic_and_strips_metadata():
  im = scene(7, (96, 96))
  im.info['exif'] = Image.Exif().tobytes()
  im.info['icc_profile'] = b'not really'
  first = images.to_jpeg(im)
  assert first == images.to_jpeg(im.copy()) == images.to_jpeg(Image.fromarray(np.asarray(im)))
  assert first[:3] == b'\xff\xd8\xff'
  with Image.open(io.BytesIO(first)) as back:
    assert 'exif' not in back.info and 'icc_profile' not in back.info
    assert back.size == (96, 96)
  assert images.to_jpeg(im, quality=50) != first


def test_downscale_caps_the_long_side_and_maps_boxes_back():
  im = Image.new('RGB', (4000, 3000))
  small, scale = images.downscale(im, 1024)
  assert small.size == (1024, 768) and scale == pytest.approx(0.256)
  assert images.scale_box((256, 128, 512, 384), 1 / scale) == pytest.approx((1000, 500, 2000, 1500))
  tall, scale = images.downscale(Image.new('RGB', (300, 2000)), 500)
  assert tall.size == (75, 500) and scale == 0.25
  same, scale = images.downscale(im, 4000)
  assert same is im and scale == 1.0
