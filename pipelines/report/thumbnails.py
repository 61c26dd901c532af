"""Images for contact sheets: finding a crop or source image on this machine and shrinking it.

Rows name images by the path the job wrote or read (absolute, relative, or gs:// / http);
only local files can be shown, and a moved output folder is looked up by its tail.
"""
import os
from typing import Optional

import numpy as np
from PIL import Image, ImageOps

SIZE = (128, 128)
_REMOTE = ('gs://', 'http://', 'https://')


def resolve(path: Optional[str], job_dir: Optional[str]) -> Optional[str]:
  """A readable local file for `path`, or None (remote, or not on this machine)."""
  if not path or path.startswith(_REMOTE):
    return None
  if os.path.isabs(path) and os.path.isfile(path):
    return path
  if job_dir:
    if not os.path.isabs(path) and os.path.isfile(os.path.join(job_dir, path)):
      return os.path.join(job_dir, path)
    parts = os.path.normpath(path).split(os.sep)
    for keep in (3, 2, 1):  # <split>/<label>/<file> under a moved output folder
      candidate = os.path.join(job_dir, *parts[-keep:])
      if len(parts) >= keep and os.path.isfile(candidate):
        return candidate
  return None


def load(path: str, size=SIZE) -> Optional[np.ndarray]:
  """RGB pixels of the image shrunk to fit `size`, or None when it does not decode."""
  try:
    with Image.open(path) as image:
      image = ImageOps.exif_transpose(image)
      image = image.convert('RGB')
      image.thumbnail(size)
      return np.asarray(image)
  except (OSError, ValueError, Image.DecompressionBombError):
    return None
