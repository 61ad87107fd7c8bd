"""The Keras backend a script runs on, chosen and checked before Keras is imported, Keras loaded
quietly (without the C++ libraries' start-up lines; MNISTLAB_LOGS=1 shows them), and the machine.
"""

import contextlib
import functools
import importlib.metadata
import importlib.util
import logging
import os
import platform
import re
import sys
import tempfile
import warnings

from mnistlab import cli, internals, records

# The backends that can train, and the pip package that adds each.
TRAINING_BACKENDS = {"jax": "jax[cpu]", "tensorflow": "tensorflow-cpu", "torch": "torch"}
INFERENCE_ONLY = ("numpy", "openvino")
# Start-up lines of TensorFlow, absl and XLA: glog-style "I0000 00:00:..." lines and their kin,
# TensorFlow's own "2026-12-03 18:22:52.058269: I ..." lines (as 2.20 writes them), and the full
# TensorFlow package's probe for CUDA on a machine without a GPU.
CHATTER = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} \d\d:\d\d:"
                     r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] "
                     r"|To enable the following instructions:|oneDNN custom operations are on"
                     r"|.*failed call to cuInit)")
# JAX's own disk cache of compiled programs keeps every one of them: the lab's compile in well
# under JAX's default threshold of 1 s. (A size limit would need the filelock package.)
JAX_CACHE = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}

def choose(default):
    """``KERAS_BACKEND`` if set, else ``default``, checked and set up before Keras loads."""
    name = os.environ.setdefault("KERAS_BACKEND", default)
    usable = ", ".join(sorted(TRAINING_BACKENDS))
    if name in INFERENCE_ONLY:
        raise cli.LabError(f"KERAS_BACKEND={name} cannot train models; set it to one of {usable}, or unset it")
    if name not in TRAINING_BACKENDS:
        raise cli.LabError(f"KERAS_BACKEND={name} is not a Keras backend; set it to one of {usable}, or unset it")
    if importlib.util.find_spec(name) is None:
        raise cli.LabError(f"KERAS_BACKEND={name}, but {name} is not installed; "
                           f"pip install {TRAINING_BACKENDS[name]}, or unset KERAS_BACKEND to use {default}")
    share_gpu()
    if name == "jax":  # JAX's persistent compilation cache in this user's cache folder (unless chosen)
        if "JAX_COMPILATION_CACHE_DIR" not in os.environ and not records.writable(folder := compiled_programs()):
            os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
        if "JAX_COMPILATION_CACHE_DIR" in os.environ:  # reruns and workers load the steps compiled before
            for variable, value in JAX_CACHE.items():
                os.environ.setdefault(variable, value)
            # An entry that cannot be read or written only means compiling again.
            warnings.filterwarnings("ignore", message="Error (reading|writing) persistent compilation cache entry")
    if name == "tensorflow" and platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86"):
        # oneDNN's kernels on every x86 CPU, unless the user chose: TensorFlow turns them on by itself
        # only on CPUs with AVX-512 VNNI/BF16 or AMX, and trains the CNN on slower ones elsewhere.
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    return name

def share_gpu():
    """On a GPU each process takes what it uses, not most or all of it: the workers fit beside."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

def compiled_programs():  # in this user's cache folder, by the OS
    if os.name == "nt":
        home = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
    elif sys.platform == "darwin":
        home = os.path.join(os.path.expanduser("~"), "Library", "Caches")
    else:
        home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(home, "mnistlab", "jax")

def gpu_reported():
    """Whether the OS reports an NVIDIA GPU (Linux, as on Colab), asked before any backend loads."""
    try:
        return bool(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return False

@contextlib.contextmanager
def quiet():
    """Hold back stderr while the C++ libraries start, then pass on all but their chatter."""
    if os.environ.get("MNISTLAB_LOGS") == "1":
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
    with tempfile.TemporaryFile() as held:
        if saved is not None:
            os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors="replace").splitlines():
                if line.strip() and not CHATTER.match(line):
                    print(line, file=sys.stderr)

def load(name=None):
    """Keras on the backend chosen (``name``), loaded quietly, a stop waiting for the import's end."""
    with cli.deferred(), quiet():
        import keras
    if name and keras.backend.backend() != name:
        raise RuntimeError(f"Keras was imported on {keras.backend.backend()} before the lab chose {name}")
    keras.config.set_image_data_format("channels_last")  # the scripts' layout, whatever ~/.keras/keras.json says
    if keras.backend.backend() != "tensorflow":
        internals.keep_tensorflow_out()
    return keras

@functools.cache  # a process trains on one device
def device():
    """``GPU: <model>`` or ``CPU: <model>``, asked quietly (TensorFlow probes for CUDA)."""
    import keras

    with quiet():
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

def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()

def version(package):  # or None
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None

def environment():
    """Machine and versions, for the record of each run."""
    import keras
    import numpy

    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")  # unset: TensorFlow decides by the CPU
    onednn = onednn and ("off" if onednn.strip().lower() in ("0", "false", "off", "no") else "on")
    return {"python": platform.python_version(), "tensorflow": version("tensorflow-cpu") or version("tensorflow"),
            "keras": keras.__version__, "jax": version("jax"), "numpy": numpy.__version__,
            "backend": keras.backend.backend(),
            "onednn": (onednn or "TensorFlow's default for this CPU") if keras.backend.backend() == "tensorflow" else None,
            "cpu": cpu_name(), "device": device(), "cores": os.cpu_count()}
