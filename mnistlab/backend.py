"""The Keras backend a script runs on, chosen and checked before Keras is imported, and the
machine it runs on. TensorFlow, absl and XLA write start-up lines straight to stderr as their
C++ libraries load (which ones depends on the CPU); ``quiet_imports`` installs an import hook
that holds them back, whoever imports them first. MNISTLAB_LOGS=1 shows them, for debugging.
"""

import contextlib
import functools
import importlib.abc
import importlib.metadata
import importlib.machinery
import importlib.util
import logging
import os
import platform
import re
import sys
import tempfile
import warnings

from mnistlab import stops
from mnistlab.errors import LabError

# The backends that can train, and the pip package that adds each.
TRAINING_BACKENDS = {"jax": "jax[cpu]", "tensorflow": "tensorflow-cpu", "torch": "torch"}
INFERENCE_ONLY = ("numpy", "openvino")
# The packages whose first import starts the C++ libraries.
NOISY_PACKAGES = ("keras", "tensorflow", "jax", "jaxlib")
# Start-up lines of TensorFlow, absl and XLA: glog-style "I0000 00:00:..." lines and their kin,
# TensorFlow's own "2026-12-03 18:22:52.058269: I ..." lines (as 2.20 writes them), and the full
# TensorFlow package's probe for CUDA on a machine without a GPU.
CHATTER = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} \d\d:\d\d:"
                     r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] "
                     r"|To enable the following instructions:|oneDNN custom operations are on"
                     r"|.*failed call to cuInit)")
X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def choose(default):
    """``KERAS_BACKEND`` if set, else ``default``; a LabError for one that does not exist,
    cannot train, or is not installed."""
    name = os.environ.setdefault("KERAS_BACKEND", default)
    usable = ", ".join(sorted(TRAINING_BACKENDS))
    if name in INFERENCE_ONLY:
        raise LabError(f"KERAS_BACKEND={name} cannot train models; set it to one of {usable}, or unset it")
    if name not in TRAINING_BACKENDS:
        raise LabError(f"KERAS_BACKEND={name} is not a Keras backend; set it to one of {usable}, or unset it")
    if importlib.util.find_spec(name) is None:
        raise LabError(f"KERAS_BACKEND={name}, but {name} is not installed; "
                       f"pip install {TRAINING_BACKENDS[name]}, or unset KERAS_BACKEND to use {default}")
    share_gpu()
    if name == "jax":
        keep_compiled_programs()
    if name == "tensorflow":
        use_onednn()
    return name


def share_gpu():
    """On a GPU, each process takes the memory it uses, not most (JAX) or all (TensorFlow) of
    it, so that a run's workers and other programs fit beside it (unless the user chose)."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


# JAX's own disk cache of compiled programs keeps every one of them: the lab's compile in well
# under JAX's default threshold of 1 s. (A size limit would need the filelock package.)
JAX_CACHE = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}


def keep_compiled_programs():
    """JAX's persistent compilation cache in this user's cache folder (unless the user chose
    JAX_COMPILATION_CACHE_DIR, or none can be written): reruns and pool workers load the same
    training steps instead of compiling them again. An entry that cannot be read or written
    only means compiling again, said nowhere."""
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        folder = os.path.join(user_cache_folder(), "mnistlab", "jax")
        try:
            os.makedirs(folder, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError:
            return
        os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    for variable, value in JAX_CACHE.items():
        os.environ.setdefault(variable, value)
    warnings.filterwarnings("ignore", message="Error (reading|writing) persistent compilation cache entry")


def user_cache_folder():
    """Where this user's programs keep caches: the OS's own place for them."""
    if os.name == "nt":
        return os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~"), "Library", "Caches")
    return os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")


def gpu_reported():
    """Whether the OS reports an NVIDIA GPU (Linux, as on Colab), asked before any backend loads."""
    try:
        return bool(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return False


def use_onednn():
    """TensorFlow's oneDNN kernels on every x86 CPU, unless the user chose with
    TF_ENABLE_ONEDNN_OPTS: TensorFlow turns them on by itself only on CPUs with AVX-512
    VNNI/BF16 or AMX, and elsewhere trains the CNN on slower Eigen kernels (bench/README.md)."""
    if platform.machine().lower() in X86:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def onednn():
    """Whether TensorFlow's oneDNN kernels are on in this process: "on", "off", or None when
    TensorFlow decides by the CPU (the variable unset) or is not in use."""
    value = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if value is None:
        return None
    return "off" if value.strip().lower() in ("0", "false", "off", "no") else "on"


def load(default):
    """Choose the backend, then import and return Keras on it (an earlier import of Keras must
    have chosen the same one: Keras reads it once)."""
    name = choose(default)
    keras = imported_keras()
    if keras.backend.backend() != name:
        raise RuntimeError(f"Keras was imported on {keras.backend.backend()} before backend.load "
                           f"chose {name}; call backend.load before importing Keras")
    # The layout the scripts build their images in, whatever a user's ~/.keras/keras.json says.
    keras.config.set_image_data_format("channels_last")
    return keras


def without_tensorflow():
    """Off TensorFlow, Keras's lazy handle on TensorFlow is told it is not there: serialising a
    layer would otherwise import all of TensorFlow only to ask whether an object is a
    tf.TensorShape. (A Keras without that handle imports it: slower, nothing else.)"""
    from keras.src.utils import module_utils

    handle = getattr(module_utils, "tensorflow", None)
    if handle is not None and handle.module is None:
        handle._available = False


def imported_keras():
    """Keras, on the backend already chosen (or Keras's own default), its libraries' start-up
    lines held back from here on, whoever imports them."""
    quiet_imports()
    import keras

    if keras.backend.backend() != "tensorflow":
        without_tensorflow()
    return keras


@functools.cache  # a process trains on one device
def device():
    """What this process trains on: ``GPU: <model>``, or ``CPU: <model>``. The backend's device
    query runs quietly (where TensorFlow has CUDA support, it probes for a GPU there)."""
    import keras

    with quiet_start():
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            gpus = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
                    for gpu in tf.config.list_physical_devices("GPU")]
        elif keras.backend.backend() == "jax":
            import jax

            gpus = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
        else:
            import torch

            gpus = [torch.cuda.get_device_name(0)] if torch.cuda.is_available() else []
    return f"GPU: {gpus[0]}" if gpus else f"CPU: {cpu_name()}"


def on_cpu():
    """Whether this process's backend computes on the CPU, where the project's faster ways of
    training were measured (``training.compile_model``)."""
    import keras

    return jax_on_cpu() if keras.backend.backend() == "jax" else device().startswith("CPU")


@functools.cache
def jax_on_cpu():
    """Whether JAX computes on this machine's CPU (no GPU or TPU it would use)."""
    import jax

    return jax.default_backend() == "cpu"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_quiet_depth = [0]  # imports inside a quiet import are already held back


@contextlib.contextmanager
def quiet_start():
    """Hold back what the C++ libraries write to stderr while they start, then pass on every
    line but their start-up chatter (so a real error still shows)."""
    if os.environ.get("MNISTLAB_LOGS") == "1" or _quiet_depth[0]:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # e.g. tf.function retracing notes
    with contextlib.suppress(AttributeError, OSError, ValueError):  # no stderr, or a closed one
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to redirect: nothing can be printed anyway
        saved = None
    _quiet_depth[0] += 1
    with tempfile.TemporaryFile() as held:
        if saved is not None:
            os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            _quiet_depth[0] -= 1
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors="replace").splitlines():
                if line.strip() and not CHATTER.match(line):
                    print(line, file=sys.stderr)


class _QuietLoader(importlib.abc.Loader):
    """A package's own loader, its module run inside ``quiet_start``."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader  # as if loaded directly
        # A stop waits for the import to end: one raised inside TensorFlow's can abort the
        # process (with no line), or leave a module half made that the next import trips on.
        with stops.deferred(), quiet_start():
            self.loader.exec_module(module)

    def __getattr__(self, name):  # get_resource_reader, get_source, ...: the real loader's
        return getattr(self.loader, name)


class _QuietImports(importlib.abc.MetaPathFinder):
    """Finds the noisy packages as Python would, and runs their first import quietly."""

    def find_spec(self, name, path=None, target=None):
        if name not in NOISY_PACKAGES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_imports():
    """Install the hook that makes the first import of each noisy package quiet (once)."""
    if not any(isinstance(finder, _QuietImports) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImports())


def environment():
    """Machine and versions, for the record of each run."""
    import keras
    import numpy

    return {
        "python": platform.python_version(),
        "tensorflow": version("tensorflow-cpu") or version("tensorflow"),
        "keras": keras.__version__,
        "jax": version("jax"),
        "numpy": numpy.__version__,
        "backend": keras.backend.backend(),
        "onednn": (onednn() or "TensorFlow's default for this CPU")
                  if keras.backend.backend() == "tensorflow" else None,
        "cpu": cpu_name(),
        "device": device(),
        "cores": os.cpu_count(),
    }


def version(package):
    """The installed version of ``package``, or None."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
