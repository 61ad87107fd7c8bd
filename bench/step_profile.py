"""Where a dense model's training step spends its time, on one core as a pool worker trains:
the step's matrix products alone; the autoencoder's step and the study MLP's in plain JAX, in
Keras's own train function (one compiled call a batch) and in the project's
(``training.scanned_steps``: 32 batches a call, handed the batches, or their rows' numbers as
``training.fit`` hands them); the study MLP's plain-JAX step two processes side by side (as
the study's workers), and several models stacked in one program with ``jax.vmap``
(bench/README.md, "Where the dense models lose their time").

    python bench/step_profile.py --data ../shared/data/mnist.npz

Each measurement runs in its own process, pinned to a core with XLA single-threaded.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SINGLE = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false", "KERAS_BACKEND": "jax"}
PRODUCTS = [(2048, 2048, 2048), (64, 784, 128), (784, 64, 128), (64, 128, 784), (64, 128, 96),
            (128, 784, 500), (784, 128, 500), (128, 500, 300)]


def autoencoder_flag(name):
    """A default of the lab autoencoder's flags (``hidden``, ``latent``, ``batch_size``)."""
    from mnistlab import flags

    return flags.autoencoder_parser().get_default(name)


def autoencoder_size():
    """The lab autoencoder's ``--hidden`` and ``--latent``."""
    return autoencoder_flag("hidden"), autoencoder_flag("latent")


def products():
    """GFLOP/s of each product of PRODUCTS, in a compiled loop."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    found = {}
    for m, k, n in PRODUCTS:
        reps = 3 if m == 2048 else 300
        a, b = (jnp.asarray(np.random.rand(*shape).astype("float32")) for shape in ((m, k), (k, n)))

        @jax.jit
        def loop(a, b):
            return jax.lax.fori_loop(0, reps, lambda i, acc: acc + (a + acc[0, 0] * 0) @ b, jnp.zeros((m, n)))
        loop(a, b).block_until_ready()
        found[f"{m}x{k} by {k}x{n}"] = 2 * m * k * n * reps / timed(lambda: loop(a, b).block_until_ready()) / 1e9
    return found


def dense_logits(params, x):
    """The output of dense layers ``params`` ([(kernel, bias)]) on ``x``: ReLU between layers,
    none after the last."""
    import jax

    for i, (w, b) in enumerate(params):
        x = x @ w + b
        x = jax.nn.relu(x) if i < len(params) - 1 else x
    return x


def plain_jax(optimizer, steps=937):
    """Seconds a step of the lab autoencoder written in plain JAX, scanned over an epoch."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from mnistlab import lab

    sizes, rng = lab.autoencoder_sizes(*autoencoder_size()), np.random.default_rng(0)
    params = [(jnp.asarray(rng.normal(0, 0.05, (a, b)).astype("float32")), jnp.zeros(b)) for a, b in zip(sizes, sizes[1:])]

    def step(carry, x):
        params, m, v, t = carry
        value, grads = jax.value_and_grad(lambda p: bce(p, x))(params)
        if optimizer == "sgd":
            return (jax.tree.map(lambda p, g: p - 0.01 * g, params, grads), m, v, t), value
        t = t + 1
        m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
        v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
        lr = 1e-3 * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        return (jax.tree.map(lambda p, m, v: p - lr * m / (jnp.sqrt(v) + 1e-7), params, m, v), m, v, t), value

    def bce(params, x):
        logits = dense_logits(params, x)
        return jnp.mean(jnp.maximum(logits, 0) - logits * x + jnp.log1p(jnp.exp(-jnp.abs(logits))))

    epoch = jax.jit(lambda carry, xs: jax.lax.scan(step, carry, xs))
    xs = jnp.asarray(rng.random((steps, autoencoder_flag("batch_size"), sizes[0]), dtype=np.float32))
    zeros = jax.tree.map(jnp.zeros_like, params)
    carry = (params, zeros, zeros, jnp.float32(0))
    jax.block_until_ready(epoch(carry, xs))
    return timed(lambda: jax.block_until_ready(epoch(carry, xs))) / steps


def plain_study(members, steps=64):
    """GFLOP/s of the study MLP's step (SGD with L2 on every kernel) in plain JAX, ``members``
    models stacked with ``jax.vmap`` in one compiled program, scanned over ``steps`` batches."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import floor
    from mnistlab import flags, lab

    sizes, batch, l2 = lab.mlp_sizes(lab.STUDY_HIDDEN), lab.MLP_BATCH_SIZE, flags.L2_FACTORS[0]

    def init(key):
        keys = jax.random.split(key, len(sizes) - 1)
        return [(jax.random.normal(k, (a, b)) * 0.05, jnp.zeros(b)) for k, a, b in zip(keys, sizes, sizes[1:])]

    def loss(params, x, y):
        penalty = sum(jnp.sum(w * w) for w, _ in params)
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(dense_logits(params, x)) * y, axis=-1)) + l2 * penalty

    def step(params, batch):
        grads = jax.grad(loss)(params, *batch)
        return jax.tree.map(lambda p, g: p - lab.MLP_LR * g, params, grads), None

    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.random((members, steps, batch, sizes[0]), dtype=np.float32))
    ys = jax.nn.one_hot(rng.integers(0, lab.CLASSES, (members, steps, batch)), lab.CLASSES)
    params = jax.vmap(init)(jax.random.split(jax.random.PRNGKey(0), members))
    epoch = jax.jit(jax.vmap(lambda p, x, y: jax.lax.scan(step, p, (x, y))[0]))
    jax.block_until_ready(epoch(params, xs, ys))
    best = min(timed(lambda: jax.block_until_ready(epoch(params, xs, ys))) for _ in range(5))
    return floor.training_flop(floor.dense_layers(sizes)) * batch * steps * members / best / 1e9


def timed(work):
    """Seconds ``work()`` takes."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def keras_model(data, model, optimizer):
    """The lab ``model`` (``autoencoder`` or ``study``, the study MLP at its first L2 factor)
    compiled the project's way with ``optimizer`` (``sgd`` or ``adam``), its training inputs and
    targets, and its batch size."""
    import keras

    import denoise_autoencoder as dae
    import mlp_mnist
    from mnistlab import data as lab_data, flags, lab, training

    training.set_seed(0)
    if model == "study":
        (inputs, targets), _ = mlp_mnist.load_data(data)
        built = mlp_mnist.build_mlp(lab.STUDY_HIDDEN, flags.L2_FACTORS[0])
        loss, batch, rate = "categorical_crossentropy", lab.MLP_BATCH_SIZE, lab.MLP_LR
    else:
        (targets, _), _ = dae.load_data(data)
        inputs, built = lab_data.noisy_copy(targets, 0.4, 1), dae.build_autoencoder(*autoencoder_size())[0]
        loss, batch, rate = "binary_crossentropy", autoencoder_flag("batch_size"), 0.01
    chosen = keras.optimizers.SGD(rate) if optimizer == "sgd" else keras.optimizers.Adam(1e-3)
    return training.compile_model(built, chosen, loss, metrics=()), inputs, targets, batch


def keras_step(data, model, optimizer, way):
    """Seconds a step of the lab ``model`` in Keras, and a digest of its weights after three
    epochs (neither project way may change them): ``way`` is ``fit`` (Keras's own train
    function, one compiled call a batch), ``scan`` (``model.fit`` with the project's scanned
    steps on the rows) or ``rows`` (``training.fit``: the scanned steps fed the rows' numbers)."""
    import hashlib

    import numpy as np

    from mnistlab import training

    model, x, y, batch = keras_model(data, model, optimizer)
    if way == "fit":
        model.train_function = None
    fit = training.fit if way == "rows" else lambda model, x, y, **options: model.fit(x, y, **options)
    times = [timed(lambda: fit(model, x, y, epochs=1, batch_size=batch, verbose=0)) for _ in range(3)]
    weights = np.concatenate([w.ravel() for w in model.get_weights()])
    return min(times[1:]) / (len(x) // batch), hashlib.sha256(weights.tobytes()).hexdigest()[:12]


def child(args):
    kind = args.measure
    if kind == "products":
        return products()
    if kind.startswith("study"):
        return plain_study(int(kind.split("-")[1]))
    if kind.startswith("plain"):
        return plain_jax(kind.split("-")[1])
    _, model, optimizer, way = kind.split("-")
    return keras_step(args.data, model, optimizer, way)


def measure(kind, data, cores=(0,)):
    """``kind`` measured in a fresh process pinned to each of ``cores``, all at once; the first's
    result."""
    commands = [[sys.executable, __file__, "--measure", kind, "--data", data] for _ in cores]
    if hasattr(os, "sched_setaffinity"):
        commands = [["taskset", "-c", str(core), *command] for core, command in zip(cores, commands)]
    started = [subprocess.Popen(command, env={**os.environ, **SINGLE}, stdout=subprocess.PIPE, text=True)
               for command in commands]
    outs = [process.communicate()[0] for process in started]
    return json.loads(outs[0].strip().splitlines()[-1])


def main():
    import floor  # bench/floor.py: the training FLOP per image, counted from the layers
    from mnistlab import lab

    flop = floor.training_flop(floor.dense_layers(lab.autoencoder_sizes(*autoencoder_size())))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("MNIST_NPZ"), help="Keras's mnist.npz")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(child(args)))
        return
    for name, rate in measure("products", args.data).items():
        print(f"product {name:>22}: {rate:6.1f} GFLOP/s")
    for optimizer in ("sgd", "adam"):
        plain = measure(f"plain-{optimizer}", args.data)
        (fit, fit_digest), (scan, scan_digest), (rows, rows_digest) = (
            measure(f"keras-autoencoder-{optimizer}-{way}", args.data) for way in ("fit", "scan", "rows"))
        for name, seconds in ((f"plain JAX, {optimizer}", plain), (f"Keras fit, {optimizer}", fit),
                              (f"Keras scanned, {optimizer}", scan), (f"scanned on rows, {optimizer}", rows)):
            print(f"autoencoder step, {name:>24}: {1e3 * seconds:.2f} ms, "
                  f"{flop * autoencoder_flag('batch_size') / seconds / 1e9:5.1f} GFLOP/s")
        same = fit_digest == scan_digest == rows_digest
        print(f"  Keras / plain JAX {fit / plain:.2f}x; scanned speed-up {fit / scan:.2f}x, fed rows {scan / rows:.2f}x "
              f"more; weights {'identical' if same else 'DIFFER'} after 3 epochs")
    peak = measure("products", args.data)["2048x2048 by 2048x2048"]
    alone = measure("study-1", args.data)
    print(f"study MLP step, plain JAX, alone: {alone:5.1f} GFLOP/s, {alone / peak:.0%} of the core's peak")
    study_flop = floor.training_flop(floor.dense_layers(lab.mlp_sizes(lab.STUDY_HIDDEN))) * lab.MLP_BATCH_SIZE
    for way, name in (("fit", "Keras fit"), ("scan", "Keras scanned"), ("rows", "scanned on rows")):
        seconds, _ = measure(f"keras-study-sgd-{way}", args.data)
        rate = study_flop / seconds / 1e9
        print(f"  {name:>15}: {1e3 * seconds:.2f} ms, {rate:5.1f} GFLOP/s, {rate / alone:.0%} of plain JAX's")
    beside = measure("study-1", args.data, cores=(0, 1))
    print(f"  two side by side (as the study's workers), each: {beside:5.1f} GFLOP/s, {beside / alone:.2f}x alone")
    for members in (2, 3, 4):
        stacked = measure(f"study-{members}", args.data)
        print(f"  {members} models stacked with vmap: {stacked:5.1f} GFLOP/s, {stacked / alone:.2f}x one at a time")


if __name__ == "__main__":
    main()
