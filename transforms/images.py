"""Image decoding, hashing and cropping for `face_dataset`: pure functions, no Beam.

Photos from the wild are hostile input: HTML error pages from dead links, truncated
downloads, decompression bombs, CMYK and 16-bit files, animations, EXIF-rotated camera
pictures. `decode` turns any bytes into either an upright RGB image or a `RecordError` with a
readable reason (never another exception), so a job can make every failure an error row.

Hashes: `pixel_sha256` identifies exact duplicates by their pixels, not their file bytes
(a PNG and a BMP of one picture match); `phash` is a 64-bit DCT perceptual hash that survives
re-encoding, resizing and small brightness changes, and `band_keys` buckets those hashes so
near duplicates can be found with a group-by instead of comparing all pairs.
"""
import hashlib
import io
import math
from typing import List, NamedTuple, Sequence, Tuple

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from transforms.deadletter import RecordError

MAX_PIXELS = 64_000_000  # a 64 MP photo is ~192 MB as RGB; below Pillow's own limit (~89 MP)
MAX_BYTES = 32 * 1024 * 1024
HASH_BITS = 64

# Raster formats with a magic number that photos come in. Pillow also guesses magic-less
# formats (TGA, ...) that random bytes can pass for, and EPS would run Ghostscript.
Image.init()
FORMATS = tuple(f for f in ('JPEG', 'PNG', 'GIF', 'WEBP', 'BMP', 'TIFF', 'PPM', 'AVIF')
                if f in Image.OPEN)

Box = Tuple[float, float, float, float]
IntBox = Tuple[int, int, int, int]

# EXIF orientation -> the transposition that makes the stored pixels upright (TIFF/EXIF spec).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112


class Decoded(NamedTuple):
  image: Image.Image  # RGB, upright, first frame, no metadata
  width: int
  height: int
  format: str  # Pillow's name: 'JPEG', 'PNG', 'GIF', 'MPO', ...
  exif_rotated: bool  # an EXIF orientation other than 1 was applied
  frames: int  # 1 unless animated (or multi-page)


_MAGIC = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG\r\n\x1a\n', 'PNG'), (b'GIF8', 'GIF'),
          (b'RIFF', 'WEBP'), (b'II*\x00', 'TIFF'), (b'MM\x00*', 'TIFF'))


def _not_an_image(data: bytes) -> str:
  """Why bytes Pillow could not identify are not an image, as specific as the bytes allow."""
  head = data[:1024].lstrip(b'\xef\xbb\xbf \t\r\n').lower()
  if head.startswith((b'<!doctype html', b'<html', b'<head', b'<body', b'<title')) \
      or b'<html' in head:
    return 'not an image: an HTML page (a dead link or an error page?)'
  if head.startswith((b'<?xml', b'<svg')):
    return 'not an image: XML or SVG text (vector images are not supported)'
  for magic, fmt in _MAGIC:
    if data.startswith(magic) and (fmt != 'WEBP' or data[8:12] == b'WEBP'):
      return 'corrupt image: a %s file Pillow cannot read (%d bytes)' % (fmt, len(data))
  chunk = data[:1024]
  if b'\x00' not in chunk:
    try:
      chunk.decode('utf-8')
      is_text = True
    except UnicodeDecodeError as e:  # a character cut at the end of the chunk is still text
      is_text = len(data) > len(chunk) and e.start >= len(chunk) - 3
    if is_text:
      return 'not an image: text (%d bytes)' % len(data)
  return 'not an image: unknown or unsupported format (starts %s)' % data[:8].hex()


def _orientation(im: Image.Image) -> int:
  """The EXIF orientation (1-8), 1 when absent or unreadable: broken EXIF is not a bad image."""
  try:
    value = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
  except Exception:  # any EXIF parsing failure means "no orientation"
    return 1
  return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _over_white(rgba: np.ndarray) -> np.ndarray:
  """RGB of an RGBA array composited on white: transparent means background, not black."""
  rgb = rgba[..., :3].astype(np.uint32)
  alpha = rgba[..., 3:4].astype(np.uint32)
  return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def _scaled_to_8bit(values: np.ndarray, top: float) -> np.ndarray:
  """Values in 0..top scaled (not clipped at 255) to 0..255, rounding to nearest."""
  values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=top, neginf=0.0)
  return np.rint(np.clip(values, 0.0, top) * (255.0 / top)).astype(np.uint8)


def to_rgb(im: Image.Image) -> Image.Image:
  """Any Pillow mode as an 8-bit RGB image (a new one), alpha composited on white.

  16-bit (I;16*, I) is scaled 0..65535 -> 0..255 (I values outside are clipped). Float (F)
  is taken as 0..1 when no value exceeds 1, else as 0..255 (Pillow's own F convention).
  CMYK uses Pillow's conversion (Adobe-inverted JPEGs are un-inverted by the JPEG reader).
  """
  mode = im.mode
  if mode == 'RGB' and 'transparency' not in im.info:
    return im.copy()
  if mode.startswith('I;16') or mode == 'I':
    gray = _scaled_to_8bit(np.asarray(im), 65535.0)
    return Image.fromarray(gray, 'L').convert('RGB')
  if mode == 'F':
    values = np.asarray(im)
    finite = values[np.isfinite(values)]
    top = 1.0 if finite.size == 0 or finite.max() <= 1.0 else 255.0
    return Image.fromarray(_scaled_to_8bit(values, top), 'L').convert('RGB')
  if mode == 'LAB':
    from PIL import ImageCms  # optional part of Pillow (LittleCMS); only LAB TIFFs need it
    transform = ImageCms.buildTransform(ImageCms.createProfile('LAB'),
                                        ImageCms.createProfile('sRGB'), 'LAB', 'RGB')
    return ImageCms.applyTransform(im, transform)
  if mode in ('RGBA', 'LA', 'PA', 'RGBa') or 'transparency' in im.info:
    rgba = np.asarray(im.convert('RGBA'))
    return Image.fromarray(_over_white(rgba), 'RGB')
  return im.convert('RGB')  # 1, L, P, CMYK, YCbCr, HSV, RGBX


def decode(data: bytes, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES,
           formats: Sequence[str] = FORMATS) -> Decoded:
  """Bytes -> upright RGB first frame; RecordError for anything that is not a sound image.

  The pixel count in the header is checked before any pixel is decoded, against
  `max_pixels` or Pillow's `Image.MAX_IMAGE_PIXELS` if lower (so Pillow's
  DecompressionBombWarning case is refused too; its DecompressionBombError becomes a
  RecordError). The whole first frame is loaded, so files cut inside the pixel data fail
  here, not later (one that lost only a trailer, e.g. PNG's IEND, has every pixel and
  passes). Only `formats` are tried: magic-less formats (TGA) would take random bytes.
  """
  if not isinstance(data, (bytes, bytearray, memoryview)):
    raise RecordError('not an image: expected bytes, got %s' % type(data).__name__)
  data = bytes(data)
  if not data:
    raise RecordError('not an image: empty file')
  if len(data) > max_bytes:
    raise RecordError('image too large: %d bytes > %d' % (len(data), max_bytes))
  if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone set it globally: truncation would pass
    raise RecordError('cannot check images: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set')
  limit = max_pixels
  if Image.MAX_IMAGE_PIXELS:
    limit = min(limit, Image.MAX_IMAGE_PIXELS)
  try:
    with Image.open(io.BytesIO(data), formats=list(formats)) as im:
      fmt = im.format or 'unknown'
      width, height = im.size
      if width < 1 or height < 1:
        raise RecordError('bad image: %s of %dx%d pixels' % (fmt, width, height))
      if width * height > limit:
        raise RecordError('decompression bomb: %s of %dx%d = %d pixels > %d'
                          % (fmt, width, height, width * height, limit))
      frames = int(getattr(im, 'n_frames', 1) or 1)
      if frames > 1:
        im.seek(0)
      im.load()
      orientation = _orientation(im)
      rgb = to_rgb(im)
  except RecordError:
    raise
  except UnidentifiedImageError:
    raise RecordError(_not_an_image(data)) from None
  except Image.DecompressionBombError as e:
    raise RecordError('decompression bomb: %s' % e) from None
  except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, ...
    raise RecordError('corrupt image: %s: %s' % (type(e).__name__, e)) from None
  if orientation in _ORIENTATION:
    rgb = rgb.transpose(_ORIENTATION[orientation])
  rgb.info = {}
  return Decoded(rgb, rgb.width, rgb.height, fmt, orientation != 1, frames)


def _rgb(image: Image.Image) -> Image.Image:
  return image if image.mode == 'RGB' else to_rgb(image)


def pixel_sha256(image: Image.Image) -> str:
  """Hex SHA-256 of the size and RGB pixels: one value per picture whatever the file format."""
  image = _rgb(image)
  digest = hashlib.sha256(b'RGB %d %d\n' % image.size)
  digest.update(image.tobytes())
  return digest.hexdigest()


_DCT_N = 32
_DCT_KEEP = 8


def _dct_matrix(n: int) -> np.ndarray:
  """Orthonormal DCT-II matrix C: the 2-D transform of X is C @ X @ C.T."""
  k = np.arange(n)[:, None]
  x = np.arange(n)[None, :]
  c = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
  c[0, :] = math.sqrt(1.0 / n)
  return c


_DCT = _dct_matrix(_DCT_N)


def phash(image: Image.Image) -> int:
  """64-bit DCT perceptual hash.

  Definition: luma (Pillow's 'L', ITU-R 601); box-reduced by an integer factor while both
  sides stay >= 128 px; as float, resized to 32x32 with LANCZOS (aspect ignored);
  orthonormal 2-D DCT-II D = C X C^T. Keep the 8x8 lowest frequencies D[u, v], u, v < 8.
  Threshold t = median of the 63 AC terms (DC excluded: it is only the mean brightness,
  32 x mean luma, on another scale than the AC terms). Bit (u, v) is set when
  D[u, v] > t + 1e-6 |DC| (the epsilon keeps float noise out, so a flat image hashes to the
  DC bit alone); the DC bit is thus always set. Bits are row-major from the most
  significant: (0, 0) is bit 63, (7, 7) bit 0, so the hex reads row by row. With distinct
  AC terms exactly 32 bits are set (31 above the median, plus DC), so distances between
  such hashes are even.
  """
  gray = _rgb(image).convert('L')
  factor = min(gray.size) // (4 * _DCT_N)
  if factor >= 2:  # box-average big photos first: ~5x faster, hash within 2 bits
    gray = gray.reduce(factor)
  small = gray.convert('F').resize((_DCT_N, _DCT_N), Image.Resampling.LANCZOS)
  pixels = np.asarray(small, dtype=np.float64)
  low = (_DCT @ pixels @ _DCT.T)[:_DCT_KEEP, :_DCT_KEEP].ravel()
  threshold = np.median(low[1:]) + 1e-6 * abs(low[0])
  value = 0
  for bit in low > threshold:
    value = (value << 1) | int(bit)
  return value


def phash_hex(h: int) -> str:
  """A 64-bit hash as 16 lowercase hex digits."""
  if not 0 <= h < 1 << HASH_BITS:
    raise RecordError('not a 64-bit hash: %r' % (h,))
  return '%016x' % h


def hamming(a: int, b: int) -> int:
  """Number of differing bits."""
  return (a ^ b).bit_count()


def band_keys(h: int, bands: int) -> List[str]:
  """Bucket keys 'b<index>:<hex>' of `h` cut into `bands` contiguous bit bands.

  Pigeonhole: if hamming(a, b) <= d and bands >= d + 1, the at most d differing bits fall
  in at most d bands, so a and b agree on at least one band and share its key. Grouping by
  key therefore finds every pair within d bits (candidates are then checked with `hamming`).
  Use d + 1 bands: more bands are narrower, and narrower bands also collect more unrelated
  hashes (a w-bit band of random hashes matches with probability 2^-w). Widths differ by at
  most one bit (the first 64 % bands bands are one bit wider).
  """
  if not 1 <= bands <= HASH_BITS:
    raise ValueError('bands must be 1..%d, got %r' % (HASH_BITS, bands))
  phash_hex(h)  # range check
  base, extra = divmod(HASH_BITS, bands)
  keys = []
  shift = HASH_BITS
  for index in range(bands):
    width = base + (1 if index < extra else 0)
    shift -= width
    value = (h >> shift) & ((1 << width) - 1)
    keys.append('b%d:%0*x' % (index, (width + 3) // 4, value))
  return keys


def _check_box(box: Sequence[float]) -> Box:
  try:
    left, top, right, bottom = (float(v) for v in box)
  except (TypeError, ValueError):
    raise RecordError('bad box: %r' % (box,)) from None
  if not all(math.isfinite(v) for v in (left, top, right, bottom)):
    raise RecordError('bad box: %r' % (box,))
  return min(left, right), min(top, bottom), max(left, right), max(top, bottom)


def _check_size(width: int, height: int) -> None:
  if width < 1 or height < 1:
    raise RecordError('bad image size: %rx%r' % (width, height))


def _clamp_span(lo: float, hi: float, size: int) -> Tuple[int, int]:
  """[lo, hi) rounded outwards to whole pixels inside [0, size), at least 1 pixel long.

  A span entirely outside collapses to the 1-pixel row or column at the nearest edge.
  """
  start = min(max(math.floor(lo), 0), size - 1)
  end = max(min(math.ceil(hi), size), start + 1)
  return start, end


def crop_box(box: Sequence[float], margin: float, width: int, height: int) -> IntBox:
  """The box grown by `margin` x its width (height) on each side, clamped to the image.

  Returns integer (left, top, right, bottom), right/bottom exclusive as for `Image.crop`,
  rounded outwards. Never empty: a zero-size box gives at least 1 x 1 pixel, and a box
  partly outside is cut at the image edge; one wholly outside becomes the 1-pixel strip
  (or corner pixel) at the nearest edge. Swapped corners are put in order.
  """
  left, top, right, bottom = _check_box(box)
  _check_size(width, height)
  if not math.isfinite(margin) or margin < 0:
    raise ValueError('margin must be >= 0, got %r' % (margin,))
  dx = (right - left) * margin
  dy = (bottom - top) * margin
  x0, x1 = _clamp_span(left - dx, right + dx, width)
  y0, y1 = _clamp_span(top - dy, bottom + dy, height)
  return x0, y0, x1, y1


def _square_span(center: float, side: int, size: int) -> Tuple[int, int]:
  """A `side`-long span centred on `center`, shifted (not cut) to lie within [0, size)."""
  start = int(math.floor(center - side / 2.0 + 0.5))
  start = min(max(start, 0), size - side)
  return start, start + side


def square_box(box: Sequence[float], width: int, height: int) -> IntBox:
  """The square about the box's centre with side = its longer side, moved inside the image.

  Where the image is narrower (shorter) than that side the square shrinks to fit, i.e. the
  box's longer side is centre-cropped: a face crop is never stretched or padded.
  """
  left, top, right, bottom = _check_box(box)
  _check_size(width, height)
  side = max(1, int(math.ceil(max(right - left, bottom - top))))
  side = min(side, width, height)
  cx = min(max((left + right) / 2.0, 0.0), float(width))
  cy = min(max((top + bottom) / 2.0, 0.0), float(height))
  x0, x1 = _square_span(cx, side, width)
  y0, y1 = _square_span(cy, side, height)
  return x0, y0, x1, y1


def crop_resize(image: Image.Image, box: Sequence[float], size: int) -> Image.Image:
  """The square (see `square_box`) around `box`, resized to size x size with LANCZOS."""
  if size < 1:
    raise ValueError('size must be >= 1, got %r' % (size,))
  square = square_box(box, image.width, image.height)
  return image.crop(square).resize((size, size), Image.Resampling.LANCZOS)


def to_jpeg(image: Image.Image, quality: int = 90) -> bytes:
  """Baseline JPEG without metadata (no EXIF, ICC or comments): equal pixels, equal bytes.

  4:4:4 chroma: small face crops lose visible colour detail with 4:2:0 subsampling.
  """
  rgb = _rgb(image)
  clean = Image.frombytes('RGB', rgb.size, rgb.tobytes())  # drops info/exif/icc
  out = io.BytesIO()
  clean.save(out, 'JPEG', quality=quality, subsampling=0, optimize=True)
  return out.getvalue()


def downscale(image: Image.Image, max_px: int) -> Tuple[Image.Image, float]:
  """(image with its long side at most max_px, scale): never upscales (scale 1.0 returns the
  same image). Boxes found in the result map back with `scale_box(box, 1 / scale)`."""
  if max_px < 1:
    raise ValueError('max_px must be >= 1, got %r' % (max_px,))
  long_side = max(image.width, image.height)
  if long_side <= max_px:
    return image, 1.0
  scale = max_px / long_side
  size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
  return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0), scale


def scale_box(box: Sequence[float], factor: float) -> Box:
  """Every coordinate of `box` multiplied by `factor`."""
  left, top, right, bottom = _check_box(box)
  return left * factor, top * factor, right * factor, bottom * factor


def model_input(data: bytes, size: int) -> np.ndarray:
  """Image bytes -> float32 (size, size, 3) in [0, 1], what the face model is trained on
  and served with (one function, so training and serving cannot drift apart): decoded
  safely (EXIF orientation, any mode to RGB, first frame; RecordError for non-images) and
  resized with LANCZOS unless already size x size (face crops are square; others are
  stretched, not cropped)."""
  image = decode(data).image
  if image.size != (size, size):
    image = image.resize((size, size), Image.Resampling.LANCZOS)
  return np.asarray(image, dtype=np.float32) / np.float32(255.0)
