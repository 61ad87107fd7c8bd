"""MNIST loading, checking and preprocessing, and the lab's salt-and-pepper noise.

Source order: an explicit path (``--data``), else the ``MNIST_NPZ`` environment variable,
else ``keras.datasets.mnist.load_data()`` (which downloads once and caches).
"""

import functools
import os
import tempfile
import zipfile

import numpy as np

from mnistlab.errors import LabError
from mnistlab.lab import CLASSES

# Training and test images in a --quick run: whole batches of the scripts' batch sizes (64, 128),
# so each training and each evaluation compiles one step, not a second for a last short batch.
QUICK_SIZES = (3072, 1024)
NOISE_BLOCK = 4096  # images salted at a time
# JAX's CPU backend takes an array that starts on such a boundary as it is, without a copy
# (training.rows_fed hands it the training images).
ALIGNMENT = 64
KEYS = ("x_train", "y_train", "x_test", "y_test")
OFFLINE_HINT = (
    "pass --data /path/to/mnist.npz or set MNIST_NPZ to a local copy of Keras's mnist.npz"
)


def resolve_source(path=None):
    """The local file to read, or None for the Keras download."""
    return path or os.environ.get("MNIST_NPZ") or None


def load_mnist(path=None, quick=False):
    """Return ``(x_train, y_train), (x_test, y_test)`` as checked uint8 arrays; with ``quick``,
    only the first QUICK_SIZES examples of each (MNIST is already shuffled)."""
    source = resolve_source(path)
    if source is None:
        arrays = _download()
        check_arrays(arrays, "the Keras download")
    else:
        arrays = _read_checked(source, _stamp(source))
    sizes = QUICK_SIZES if quick else (None, None)
    return tuple((arrays[f"x_{split}"][:size], arrays[f"y_{split}"][:size]) for split, size in zip(("train", "test"), sizes))


def downloaded_file():
    """Keras's cached download, in KERAS_HOME (~/.keras) or the temporary folder; or None."""
    homes = (os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")),
             os.path.join(tempfile.gettempdir(), ".keras"))
    paths = [os.path.join(home, "datasets", "mnist.npz") for home in homes]
    return next((path for path in paths if os.path.isfile(path)), None)


def _download():
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # any network or cache failure reads the same to the user
        raise LabError(f"could not download MNIST ({type(exc).__name__}); {OFFLINE_HINT}")
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _stamp(path):
    """What tells one version of a file from another, or None if it is not there."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


@functools.lru_cache(maxsize=1)
def _read_checked(path, stamp):
    """The checked arrays of ``path``, read once a process while the file stays the same;
    read-only, as shared."""
    arrays = _read_npz(path)
    check_arrays(arrays, path)
    for array in arrays.values():
        array.setflags(write=False)
    return arrays


def _read_npz(path):
    if not os.path.exists(path):
        raise LabError(f"data file not found: {path}; {OFFLINE_HINT}")
    if os.path.isdir(path):
        raise LabError(f"data file {path} is a folder; pass the mnist.npz inside it, or another --data")
    if not os.path.isfile(path):  # a device, a pipe: nothing np.load can read to its end
        raise LabError(f"data file {path} is not a regular file; pass Keras's mnist.npz")
    if not os.access(path, os.R_OK):
        raise LabError(f"data file cannot be read: {path}; check its permissions or pass another --data")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a single array (.npy), not an archive of four
            raise LabError(f"data file {path} holds one NumPy array, not an .npz archive; use Keras's "
                           f"mnist.npz with keys {', '.join(KEYS)}")
        with loaded as npz:
            missing = [key for key in KEYS if key not in npz.files]
            if missing:
                raise LabError(
                    f"data file {path} lacks {', '.join(missing)}; it must be Keras's mnist.npz "
                    f"with keys {', '.join(KEYS)}"
                )
            for key in KEYS:
                _check_size(npz, key, path)
            return {key: npz[key] for key in KEYS}
    except LabError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise LabError(f"data file {path} holds pickled objects, which are not loaded; use Keras's mnist.npz")
        raise LabError(f"data file {path} is corrupt ({exc}); replace it with Keras's mnist.npz")
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise LabError(f"data file {path} is not a readable .npz ({exc}); replace it with Keras's mnist.npz")


MAX_ARRAY_BYTES = 2**30  # MNIST's largest array, x_train, is 47 MB


def _check_size(npz, key, path):
    """Refuse an array whose header claims more than any MNIST array holds, before reading it."""
    with npz.zip.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise LabError(f"{key} in {path} claims {nbytes / 2**30:,.1f} GiB of shape {shape}; MNIST's arrays "
                       "are under 50 MB: use Keras's mnist.npz")


def check_arrays(arrays, source):
    """Raise LabError unless the four arrays look like MNIST."""
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise LabError(f"x_{split} in {source} has shape {x.shape}, expected (N, 28, 28); use Keras's mnist.npz")
        if y.ndim != 1:
            raise LabError(f"y_{split} in {source} has shape {y.shape}, expected (N,); use Keras's mnist.npz")
        if len(x) != len(y):
            raise LabError(f"x_{split} and y_{split} in {source} differ in length ({len(x)} vs {len(y)}); use Keras's mnist.npz")
        if len(x) == 0:
            raise LabError(f"x_{split} in {source} is empty; use Keras's mnist.npz")
        if x.dtype != np.uint8:
            raise LabError(f"x_{split} in {source} is {x.dtype}, expected uint8 pixels 0-255; use Keras's mnist.npz")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= CLASSES:
            raise LabError(f"y_{split} in {source} has labels outside 0-9; use Keras's mnist.npz")


def aligned(x, dtype=None):
    """A copy of ``x`` (as ``dtype``) whose memory starts on a multiple of ALIGNMENT bytes."""
    dtype = np.dtype(dtype or x.dtype)
    size = x.size * dtype.itemsize
    memory = np.empty(size + ALIGNMENT, np.uint8)
    start = -memory.ctypes.data % ALIGNMENT
    copy = memory[start:start + size].view(dtype).reshape(x.shape)
    copy[...] = x
    return copy


def scale(x):
    """uint8 pixels 0-255 as float32 in [0, 1] (divided in place: no second copy of the images)."""
    x = aligned(x, "float32")
    x /= 255.0
    return x


def salt_and_pepper(x, noise_level, rng):
    """A copy of ``x`` where each pixel is, with probability ``noise_level``, set to 0 (pepper)
    or 1 (salt) with equal chance, as the lab defines it. ``noise_level`` is a number, or one
    level per image (shape (N, 1) or (N, 1, 1))."""
    noise_level = check_noise_level(noise_level)
    noisy = aligned(np.asarray(x))
    per_image = noise_level.ndim == noisy.ndim  # one level per image, to slice with the images
    # Set as bits (a noised pixel's ANDed with 0, then salt's ORed with those of a 1): the same
    # values as boolean-mask assignments, without their branch on every pixel (bench/README.md).
    bits = noisy.view(f"u{noisy.itemsize}")
    one = np.ones((), noisy.dtype).view(bits.dtype)
    # A block of images at a time keeps the temporaries small whatever the data set's size.
    for start in range(0, len(noisy), NOISE_BLOCK):
        block = bits[start:start + NOISE_BLOCK]
        level = noise_level[start:start + NOISE_BLOCK] if per_image else noise_level
        # One uniform draw per pixel decides both: below level/2 salt, up to level pepper.
        u = rng.random(block.shape, dtype=np.float32)
        block *= u >= level
        block |= (u < level / 2) * one
    return noisy


def check_noise_level(noise_level):
    try:
        levels = np.asarray(noise_level, dtype=float)
    except (TypeError, ValueError):
        raise LabError(f"noise level {noise_level!r} is not a number; pass a fraction such as 0.4")
    if not (np.all(np.isfinite(levels)) and np.all((levels >= 0) & (levels <= 1))):
        raise LabError(f"noise level {noise_level} is outside [0, 1]; pass a fraction such as 0.4")
    return levels


def noisy_copy(x, level, seed):
    """Salt-and-pepper noise from its own seeded generator, so each draw is reproducible."""
    return salt_and_pepper(x, level, np.random.default_rng(seed)).astype("float32", copy=False)


def noise_band(level, fixed):
    """The range of training noise levels: ``level`` itself, or a band of mean ``level``."""
    return (level, level) if fixed else (max(0.0, 2 * level - 1), min(1.0, 2 * level))


def training_copy(x, level, fixed, seed):
    """Noisy training inputs, each image at its own level drawn from ``noise_band``."""
    low, high = noise_band(level, fixed)
    rng = np.random.default_rng(seed)
    levels = rng.uniform(low, high, size=(len(x), 1))
    return salt_and_pepper(x, levels, rng).astype("float32", copy=False)


def describe_noise(level, fixed):
    low, high = noise_band(level, fixed)
    return f"noise {level:g}" if low == high else f"noise {low:g}-{high:g} (mean {level:g})"
