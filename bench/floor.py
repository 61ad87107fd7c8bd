"""The lab against its arithmetic floor: this CPU's float32 matrix-product peak, measured in the
same run, each lab model's training FLOP per image (computed from its layers), and how much of
that peak each model's training reaches; with ``--whole-lab DIR``, each part of a finished lab
(its wall time from the run's own records) against the time its arithmetic needs at that peak.

    python bench/floor.py --data ../shared/data/mnist.npz           # peak, and each model's share of it
    python bench/floor.py --whole-lab .                             # plus the lab of ./results, part by part

The floor counts only the matrix products of Dense and Conv2D layers (everything else in these
models is a small fraction): 2 FLOP per multiply-add; when training, for each image, the
forward product and the weights' gradient of every layer, and the inputs' gradient of every
layer but the first (nothing needs the images' gradient); one forward product when only
predicting or validating.
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import bench  # noqa: E402  (bench/bench.py: the models as the scripts build them, and their measurement)

PEAK = """
import json, sys, time
import jax, jax.numpy as jnp
n = int(sys.argv[1])
a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
product = jax.jit(lambda a, b: a @ b)
product(a, a).block_until_ready()
best = float("inf")
for _ in range(10):
    start = time.perf_counter()
    product(a, a).block_until_ready()
    best = min(best, time.perf_counter() - start)
print(json.dumps(2 * n**3 / best))
"""


def layer_flop(layers):
    """FLOP of one image's forward product through each Dense and Conv2D layer of a layer table
    (as a record keeps it, ``plots.layer_table``), in order: its weights (parameters less
    biases) times the positions it is applied at, two FLOP each."""
    flop = []
    for layer in layers:
        shape = layer["output_shape"]
        if layer["kind"] == "Dense":
            flop.append(2 * (layer["parameters"] - shape[-1]))
        elif layer["kind"] == "Conv2D":
            flop.append(2 * (layer["parameters"] - shape[-1]) * shape[1] * shape[2])
    return flop


def forward_flop(layers):
    """FLOP of one image's prediction."""
    return sum(layer_flop(layers))


def training_flop(layers):
    """FLOP of one image's training step: forward, the weights' gradients, the inputs' gradients
    but the first layer's."""
    flop = layer_flop(layers)
    return 3 * sum(flop) - flop[0]


def dense_layers(sizes):
    """The layer table of dense layers of ``sizes`` (``data.mlp_sizes``), for models no record keeps."""
    return [{"kind": "Dense", "output_shape": [None, n_out], "parameters": n_in * n_out + n_out}
            for n_in, n_out in zip(sizes, sizes[1:])]


def model_layers(model_name):
    """The layer table of one of ``bench.MODELS``, built by its script's own code."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # one backend builds every script's models alike
    from mnistlab import backend, plots

    backend.quiet_imports()
    model = bench.build(model_name)[0]
    return plots.layer_table(model)


def peak(cores):
    """The backend's own float32 matrix product, in FLOP/s: on one core (pinned, one thread) or
    on all of this process's cores. The best of ten 2048x2048 products in a fresh process."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    pin = None
    if cores == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
        if hasattr(os, "sched_setaffinity"):
            core = min(os.sched_getaffinity(0))
            pin = lambda: os.sched_setaffinity(0, {core})
    result = subprocess.run([sys.executable, "-c", PEAK, "2048"], capture_output=True, text=True, env=env,
                            preexec_fn=pin, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def model_shares(models, epochs, peak_all):
    """For each model: its training FLOP per image, images per second the project's way, and the
    share of this CPU's peak that makes."""
    rows = []
    for model_name in models:
        flop = training_flop(model_layers(model_name))
        speed = bench.measure(model_name, "project", epochs, {})["images_per_second"]
        rows.append((bench.MODELS[model_name][2], flop, speed, speed * flop / peak_all))
    return rows


def read(folder, name):
    with open(os.path.join(folder, "results", f"{name}.json"), encoding="utf-8") as f:
        return json.load(f)


def lab_parts(folder):
    """Each part of the lab in ``folder``'s results, as (script, part, FLOP, wall seconds),
    from the runs' own records: their layers, epochs, examples, trials and levels."""
    from mnistlab import data, lab

    mlp, study, cnn, autoencoder = (read(folder, name) for name in
                                    ("mlp_mnist", "mlp_l2_study", "cnn_mnist", "denoise_autoencoder"))
    runs = {script: read(folder, f"{script}_run")["parts"] for script in ("mlp_mnist", "cnn_mnist", "denoise_autoencoder")}
    walls = {script: {part: value["wall_seconds"] for part, value in parts.items()} for script, parts in runs.items()}

    def fit(layers, epochs, examples, validations):
        """A fit's FLOP: training on every training image each epoch, ``validations`` passes
        over the test images."""
        return training_flop(layers) * epochs * examples["train"] + forward_flop(layers) * validations * examples["test"]

    mlp_epochs, cnn_epochs = len(mlp["history"]["loss"]), len(cnn["history"]["loss"])
    study_layers = dense_layers(data.mlp_sizes(study["settings"]["hidden"]))
    trial = fit(study_layers, study["settings"]["epochs"], mlp["examples"], 1)  # validated once, at its end
    config, examples = autoencoder["config"], autoencoder["examples"]
    levels, draws = autoencoder["noise_levels"], autoencoder["draws"]
    others = [level for level in config["levels"] if level != config["noise"]] if config["per_level"] else []
    ae_epochs = len(autoencoder["history"]["loss"])
    lab_mlp = dense_layers(data.mlp_sizes(lab.MLP_HIDDEN))
    # The accuracy study: the reader trained, then each level's draws denoised, and read by the
    # reader and by each classifier, noisy and denoised (the MLP and the CNN: their own layers).
    classifiers = [mlp["layers"], cnn["layers"]]
    predictions = (forward_flop(autoencoder["layers"]) + forward_flop(lab_mlp)
                   + 2 * sum(forward_flop(layers) for layers in classifiers)) * len(levels) * draws * examples["test"]
    parts = [("mlp_mnist", "lab MLP", fit(mlp["layers"], mlp_epochs, mlp["examples"], mlp_epochs),
             walls["mlp_mnist"]["lab MLP"]),
            ("mlp_mnist", "L2 study", trial * study["trials_run"], walls["mlp_mnist"]["L2 study"]),
            ("cnn_mnist", "lab CNN", fit(cnn["layers"], cnn_epochs, cnn["examples"], cnn_epochs),
             walls["cnn_mnist"]["lab CNN"]),
            ("denoise_autoencoder", "per-level autoencoders",
             len(others) * fit(autoencoder["layers"], ae_epochs, examples, 0),
             walls["denoise_autoencoder"].get("per-level autoencoders", 0.0)),
            ("denoise_autoencoder", "autoencoder", fit(autoencoder["layers"], ae_epochs, examples, ae_epochs),
             walls["denoise_autoencoder"]["autoencoder"]),
            ("denoise_autoencoder", "accuracy study",
             fit(lab_mlp, config["classifier_epochs"], examples, config["classifier_epochs"]) + predictions,
             walls["denoise_autoencoder"]["accuracy study"])]
    return within_others(parts, runs)


def within_others(parts, runs):
    """``parts`` with each part that ran inside another (``within`` in its run's entry) joined
    to that one: their FLOP together, in the outer part's wall time."""
    joined = {(script, part): [script, part, flop, wall] for script, part, flop, wall in parts}
    for script, part, flop, _ in parts:
        outer = runs[script].get(part, {}).get("within")
        if outer:
            del joined[script, part]
            row = joined[script, outer]
            row[1], row[2] = f"{outer}, the {part} beside them", row[2] + flop
    return [tuple(row) for row in joined.values()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="local Keras mnist.npz (default: MNIST_NPZ, else download)")
    parser.add_argument("--models", nargs="*", choices=list(bench.MODELS), default=list(bench.MODELS),
                        help="the models whose share of the peak to measure (none: only the peak)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per model")
    parser.add_argument("--whole-lab", metavar="DIR", help="also the finished lab in DIR/results, part by part")
    args = parser.parse_args()
    if args.data or os.environ.get("MNIST_NPZ"):
        os.environ["BENCH_DATA"] = args.data or os.environ["MNIST_NPZ"]
    peak_one, peak_all = peak(1), peak(os.cpu_count())
    print(f"float32 matrix-product peak (JAX, 2048x2048): {peak_one / 1e9:,.1f} GFLOP/s on one core, "
          f"{peak_all / 1e9:,.1f} GFLOP/s on all {os.cpu_count()}\n")
    if args.models:
        print("| model | training FLOP per image | images/s, the project's way | share of the all-core peak |")
        print("|---|---:|---:|---:|")
        for name, flop, speed, share in model_shares(args.models, args.epochs, peak_all):
            print(f"| {name} | {flop:,.0f} | {speed:,.0f} | {share:.0%} |", flush=True)
    if args.whole_lab:
        parts = lab_parts(args.whole_lab)
        print("\n| script | part | TFLOP | floor at the peak (s) | actual (s) | actual / floor |")
        print("|---|---|---:|---:|---:|---:|")
        for script, part, flop, wall in parts:
            floor = flop / peak_all
            print(f"| {script} | {part} | {flop / 1e12:,.2f} | {floor:,.0f} | {wall:,.0f} | "
                  f"{wall / floor if floor else float('nan'):.2f}x |")
        flop, wall = sum(p[2] for p in parts), sum(p[3] for p in parts)
        print(f"| the whole lab | | {flop / 1e12:,.2f} | {flop / peak_all:,.0f} | {wall:,.0f} | "
              f"**{wall / (flop / peak_all):.2f}x** |")


if __name__ == "__main__":
    main()
