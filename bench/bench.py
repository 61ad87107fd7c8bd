"""Training speed of each lab model: the scripts' way against the lab report's way.

The lab report's way is plain ``model.fit`` on NumPy arrays on the TensorFlow backend with
Keras's defaults. The project's way is what the scripts run: their backend choice and
``mnistlab.training`` (several steps per call into the backend). Both train the same model,
from the scripts' own ``build_*`` functions, with the same optimiser, batch size and data.
Each measurement is a fresh process (a Keras backend is fixed per process), the two ways
alternate, and the table gives medians over the rounds.

TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX;
the scripts turn them on on every x86 CPU. ``--cpu-family avx2`` makes this machine act as an
AVX2-only CPU (oneDNN and XLA capped to AVX2, and the lab's way with TensorFlow's default there,
oneDNN off), and the last table measures the lab CNN the project's way with oneDNN off and on.

    python bench/bench.py --data ../shared/data/mnist.npz            # every model, 3 rounds
    python bench/bench.py --models mlp cnn --rounds 5 --epochs 3
    python bench/bench.py --models cnn --cpu-family avx2             # as on an AVX2-only CPU
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# model: (script whose backend and builders are used, batch size, description, trainings the
# project's way runs side by side, one per core)
MODELS = {
    "mlp": ("mlp_mnist", 128, "MLP 64-64 (SGD 0.1)", 1),
    "study_mlp": ("mlp_mnist", 128, "study MLP 500-300 (SGD 0.1, L2 5e-4)", 1),
    "study_side_by_side": ("mlp_mnist", 128, "study MLP 500-300, two trials side by side (as `--study` runs them)", 2),
    "cnn": ("cnn_mnist", 128, "lab CNN (Adam 1e-3)", 1),
    "autoencoder": ("denoise_autoencoder", 64, "autoencoder (Adam 1e-3, noise 0.4)", 1),
}
# What makes this machine's oneDNN and XLA act as on a CPU of that family; None: as it is.
CPU_FAMILIES = {"native": {}, "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}}
# TensorFlow's own choice of oneDNN on each family, for the lab's way (None: it decides).
LAB_ONEDNN = {"native": None, "avx2": "0"}


def peak_mib():
    """This process's maximum resident set so far (Linux and macOS; 0 where unknown)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024  # bytes there, KiB here


def build(model_name):
    """The model, its training arrays and the compile arguments, from the scripts' own code."""
    import importlib

    import keras

    from mnistlab import data, lab

    script = importlib.import_module(MODELS[model_name][0])
    (x, y), _ = script.load_data(os.environ.get("BENCH_DATA"))
    if model_name in ("mlp", "study_mlp", "study_side_by_side"):
        hidden, l2 = (lab.MLP_HIDDEN, 0.0) if model_name == "mlp" else (lab.STUDY_HIDDEN, 5e-4)
        return (script.build_mlp(hidden, l2), x, y,
                dict(optimizer=keras.optimizers.SGD(lab.MLP_LR), loss="categorical_crossentropy"))
    if model_name == "cnn":
        return (script.build_lab_cnn(), x, y,
                dict(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy"))
    autoencoder, _, _ = script.build_autoencoder(128, 96)
    return (autoencoder, data.noisy_copy(x, 0.4, 0), x,
            dict(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy"))


def worker(model_name, way, epochs):
    """Train in this process and print one JSON line of measurements."""
    from mnistlab import backend

    if way == "project":  # as the scripts start: off TensorFlow, keep it out; on it, oneDNN on
        backend.choose("tensorflow")  # KERAS_BACKEND is set by measure()
    import keras

    from mnistlab import training

    batch_size = MODELS[model_name][1]
    keras.utils.set_random_seed(0)
    model, x, y, compile_args = build(model_name)
    metrics = ["accuracy"] if compile_args["loss"] == "categorical_crossentropy" else []
    if way == "lab":
        model.compile(**compile_args, metrics=metrics)
        fit = lambda n: model.fit(x, y, batch_size=batch_size, epochs=n, verbose=0).history["loss"]
    else:
        training.set_seed(0)
        training.compile_model(model, compile_args["optimizer"], compile_args["loss"], metrics)
        fit = lambda n: training.fit(model, x, y, epochs=n, batch_size=batch_size, verbose=0)["loss"]
    fit(1)  # the first epoch also traces and compiles: not what a long run spends its time on
    start = time.perf_counter()
    losses = fit(epochs)
    seconds = time.perf_counter() - start
    print(json.dumps({"images_per_second": len(x) * epochs / seconds, "final_loss": losses[-1],
                      "peak_mib": peak_mib(), "backend": keras.backend.backend(),
                      "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}))


def measure(model_name, way, epochs, env):
    """Images per second, final loss and peak memory of one measurement, in processes with
    ``env`` added to this one's.

    Where the project's way trains several models side by side, it starts that many workers at
    once, each pinned to its own core as ``mnistlab.parallel`` does, and adds up their images
    per second and memory.
    """
    from mnistlab import lab, parallel

    script, _, _, side_by_side = MODELS[model_name]
    backend = "tensorflow" if way == "lab" else lab.SCRIPTS[script]["backend"]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    copies = side_by_side if way == "project" else 1
    cores = parallel.core_ids(copies) if copies > 1 else [None]
    workers = [subprocess.Popen(
        [sys.executable, __file__, "--worker", model_name, way, str(epochs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=(lambda core=cores[i % len(cores)]: os.sched_setaffinity(0, {core}))
        if cores[i % len(cores)] is not None else None)
        for i in range(copies)]
    runs = []
    for worker_process in workers:
        stdout, stderr = worker_process.communicate()
        if worker_process.returncode != 0:
            sys.exit(f"bench: {model_name} ({way}) failed:\n{stderr[-3000:]}")
        runs.append(json.loads(stdout.strip().splitlines()[-1]))
    return {"images_per_second": sum(r["images_per_second"] for r in runs),
            "final_loss": runs[0]["final_loss"], "peak_mib": sum(r["peak_mib"] for r in runs),
            "backend": runs[0]["backend"]}


def compare(model_name, ways, rounds, epochs):
    """Measure ``model_name`` each of two ``ways`` ({label: (way, env)}), alternating, ``rounds``
    times; return the medians of each, and the median and range of the rounds' ratios (second /
    first) as a table cell."""
    runs = {label: [] for label in ways}
    for _ in range(rounds):
        for label, (way, env) in ways.items():
            runs[label].append(measure(model_name, way, epochs, env))
    first, second = ways
    median = lambda label, key: statistics.median(r[key] for r in runs[label])
    ratios = [b["images_per_second"] / a["images_per_second"] for a, b in zip(runs[first], runs[second])]
    # The median, and the range: one process can run at half another's speed on a shared machine.
    ratio = f"**{statistics.median(ratios):.2f}x** ({min(ratios):.2f}-{max(ratios):.2f})"
    return {label: {key: median(label, key) for key in ("images_per_second", "final_loss", "peak_mib")}
            for label in ways}, ratio, runs[second][0]["backend"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="local Keras mnist.npz (default: MNIST_NPZ, else download)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--rounds", type=int, default=5, help="alternating lab/project pairs per model")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per measurement")
    parser.add_argument("--cpu-family", choices=list(CPU_FAMILIES), default="native",
                        help="act as this machine (native) or as an AVX2-only x86 CPU")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker[0], args.worker[1], int(args.worker[2]))
    if args.data:
        os.environ["BENCH_DATA"] = args.data
    elif os.environ.get("MNIST_NPZ"):
        os.environ["BENCH_DATA"] = os.environ["MNIST_NPZ"]

    family = CPU_FAMILIES[args.cpu_family]
    lab_env = {**family, **({"TF_ENABLE_ONEDNN_OPTS": LAB_ONEDNN[args.cpu_family]}
                            if LAB_ONEDNN[args.cpu_family] else {})}
    print(f"{args.rounds} rounds of {args.epochs} timed epochs each way, on {os.cpu_count()} cores, "
          f"CPU family: {args.cpu_family}\n")
    print("| model | batch | lab way (img/s) | project way (img/s) | backend | speed-up (range) | "
          "final loss lab / project | peak MiB lab / project |")
    print("|---|---:|---:|---:|---|---:|---|---|")
    for model_name in args.models:
        medians, ratio, backend = compare(model_name, {"lab": ("lab", lab_env), "project": ("project", family)},
                                          args.rounds, args.epochs)
        lab, project = medians["lab"], medians["project"]
        print(f"| {MODELS[model_name][2]} | {MODELS[model_name][1]} | "
              f"{lab['images_per_second']:,.0f} | {project['images_per_second']:,.0f} | {backend} | "
              f"{ratio} | {lab['final_loss']:.4f} / {project['final_loss']:.4f} | "
              f"{lab['peak_mib']:,.0f} / {project['peak_mib']:,.0f} |", flush=True)
    if "cnn" in args.models:
        medians, ratio, _ = compare("cnn", {"off": ("project", {**family, "TF_ENABLE_ONEDNN_OPTS": "0"}),
                                            "on": ("project", {**family, "TF_ENABLE_ONEDNN_OPTS": "1"})},
                                    args.rounds, args.epochs)
        print("\n| model | oneDNN off (img/s) | oneDNN on (img/s) | on / off (range) | final loss off / on |")
        print("|---|---:|---:|---:|---|")
        print(f"| lab CNN, the project's way | {medians['off']['images_per_second']:,.0f} | "
              f"{medians['on']['images_per_second']:,.0f} | {ratio} | "
              f"{medians['off']['final_loss']:.4f} / {medians['on']['final_loss']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
