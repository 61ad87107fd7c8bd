"""MNIST: its sizes, loaded (``--data``, else ``MNIST_NPZ``, else Keras's download) and checked,
its pixels scaled, and the lab's salt-and-pepper noise."""

import functools
import os
import tempfile
import zipfile

import numpy as np

from mnistlab.cli import LabError

PIXELS, CLASSES = 28 * 28, 10
# Training and test images in a --quick run: whole batches of the scripts' batch sizes (64, 128),
# so each training and each evaluation compiles one step, not a second for a last short batch.
QUICK_SIZES = (3072, 1024)
NOISE_BLOCK = 4096  # images salted at a time
MAX_ARRAY_BYTES = 2**30  # MNIST's largest array, x_train, is 47 MB
KEYS = ("x_train", "y_train", "x_test", "y_test")
OFFLINE_HINT = "pass --data /path/to/mnist.npz or set MNIST_NPZ to a local copy of Keras's mnist.npz"

def mlp_sizes(hidden):
    """The units of each layer of an MLP on MNIST: the pixels, ``hidden``, the classes."""
    return [PIXELS, *hidden, CLASSES]

def autoencoder_sizes(hidden, latent):
    """The units of each layer of the lab's autoencoder, from the pixels back to the pixels."""
    return [PIXELS, hidden, latent, hidden, PIXELS]

def dense_parameters(sizes):
    """Weights and biases of dense layers of ``sizes``."""
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes, sizes[1:]))

def resolve_source(path=None):
    """The local file to read, or None for the Keras download."""
    return path or os.environ.get("MNIST_NPZ") or None

def load_mnist(path=None, quick=False):
    """``(x_train, y_train), (x_test, y_test)``, checked uint8; ``quick``: the first QUICK_SIZES."""
    source = resolve_source(path)
    if source is None:
        arrays = _download()
    else:
        status = os.stat(source) if os.path.exists(source) else None
        arrays = _read_npz(source, status and (status.st_mtime_ns, status.st_size))
    check_arrays(arrays, source or "the Keras download")
    sizes = QUICK_SIZES if quick else (None, None)
    return tuple((arrays[f"x_{split}"][:size], arrays[f"y_{split}"][:size]) for split, size in zip(("train", "test"), sizes))

def downloaded_file():
    """Keras's cached download, in KERAS_HOME (~/.keras) or the temporary folder; or None."""
    homes = (os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), os.path.join(tempfile.gettempdir(), ".keras"))
    return next((path for home in homes if os.path.isfile(path := os.path.join(home, "datasets", "mnist.npz"))), None)

def _download():
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # any network or cache failure reads the same to the user
        raise LabError(f"could not download MNIST ({type(exc).__name__}); {OFFLINE_HINT}")
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}

@functools.lru_cache(maxsize=1)
def _read_npz(path, stamp):
    """The read-only arrays of ``path``, read once while its ``stamp`` holds; oversized ones refused unread."""
    if stamp is None:
        raise LabError(f"data file not found: {path}; {OFFLINE_HINT}")
    if os.path.isdir(path):
        raise LabError(f"data file {path} is a folder; pass the mnist.npz inside it, or another --data")
    if not os.path.isfile(path):  # a device, a pipe: nothing np.load can read to its end
        raise LabError(f"data file {path} is not a regular file; pass Keras's mnist.npz")
    if not os.access(path, os.R_OK):
        raise LabError(f"data file cannot be read: {path}; check its permissions or pass another --data")
    use = f"use Keras's mnist.npz with keys {', '.join(KEYS)}"
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a single array (.npy), not an archive of four
            raise LabError(f"data file {path} holds one NumPy array, not an .npz archive; {use}")
        with loaded as npz:
            missing = [key for key in KEYS if key not in npz.files]
            if missing:
                raise LabError(f"data file {path} lacks {', '.join(missing)}; it must be Keras's mnist.npz "
                               f"with keys {', '.join(KEYS)}")
            for key in KEYS:
                with npz.zip.open(f"{key}.npy") as f:
                    version = np.lib.format.read_magic(f)
                    shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0)(f)
                nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if nbytes > MAX_ARRAY_BYTES:
                    raise LabError(f"{key} in {path} claims {nbytes / 2**30:,.1f} GiB of shape {shape}; MNIST's "
                                   "arrays are under 50 MB: use Keras's mnist.npz")
            arrays = {key: npz[key] for key in KEYS}
    except LabError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise LabError(f"data file {path} holds pickled objects, which are not loaded; use Keras's mnist.npz")
        raise LabError(f"data file {path} is corrupt ({exc}); replace it with Keras's mnist.npz")
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise LabError(f"data file {path} is not a readable .npz ({exc}); replace it with Keras's mnist.npz")
    for array in arrays.values():
        array.setflags(write=False)
    return arrays

def check_arrays(arrays, source):
    """Raise LabError unless the four arrays look like MNIST."""
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        use = "use Keras's mnist.npz"
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise LabError(f"x_{split} in {source} has shape {x.shape}, expected (N, 28, 28); {use}")
        if y.ndim != 1:
            raise LabError(f"y_{split} in {source} has shape {y.shape}, expected (N,); {use}")
        if len(x) != len(y):
            raise LabError(f"x_{split} and y_{split} in {source} differ in length ({len(x)} vs {len(y)}); {use}")
        if len(x) == 0:
            raise LabError(f"x_{split} in {source} is empty; {use}")
        if x.dtype != np.uint8:
            raise LabError(f"x_{split} in {source} is {x.dtype}, expected uint8 pixels 0-255; {use}")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= CLASSES:
            raise LabError(f"y_{split} in {source} has labels outside 0-9; {use}")

def scale(x):
    """uint8 pixels 0-255 as float32 in [0, 1] (divided in place: no second copy of the images)."""
    x = x.astype("float32")
    x /= 255.0
    return x

def salt_and_pepper(x, noise_level, rng):
    """``x``, each pixel at odds ``noise_level`` (or one per image, (N, 1)) set to 0 or 1, as the lab says."""
    try:
        noise_level = np.asarray(noise_level, dtype=float)
    except (TypeError, ValueError):
        raise LabError(f"noise level {noise_level!r} is not a number; pass a fraction such as 0.4")
    if not (np.all(np.isfinite(noise_level)) and np.all((noise_level >= 0) & (noise_level <= 1))):
        raise LabError(f"noise level {noise_level} is outside [0, 1]; pass a fraction such as 0.4")
    noisy = np.array(x)
    per_image = noise_level.ndim == noisy.ndim  # one level per image, to slice with the images
    # Set as bits (a noised pixel's ANDed with 0, then salt's ORed with those of a 1): the same
    # values as boolean-mask assignments, without their branch on every pixel (bench/README.md).
    bits = noisy.view(f"u{noisy.itemsize}")
    one = np.ones((), noisy.dtype).view(bits.dtype)
    for start in range(0, len(noisy), NOISE_BLOCK):  # small temporaries whatever the data set's size
        block = bits[start:start + NOISE_BLOCK]
        level = noise_level[start:start + NOISE_BLOCK] if per_image else noise_level
        u = rng.random(block.shape, dtype=np.float32)  # one draw decides both: below level/2 salt, up to level pepper
        block *= u >= level
        block |= (u < level / 2) * one
    return noisy

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
