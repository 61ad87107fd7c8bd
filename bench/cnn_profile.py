"""Where the lab CNN's training time goes, on TensorFlow's oneDNN kernels and all cores, as
``cnn_mnist.py`` trains: each Conv2D layer's product alone (forward, then with its gradients),
the whole training step on a batch already in memory, and Keras's fit on real MNIST, each as a
share of this CPU's matrix-product peak (bench/README.md, "Where the CNN loses its time").

    python bench/cnn_profile.py --data ../shared/data/mnist.npz

Every measurement is the best of five timed calls of 32 steps each (as
``steps_per_execution``), after one that traces and compiles.
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import bench  # noqa: E402  (bench/bench.py: the models as the scripts build them)
import floor  # noqa: E402  (bench/floor.py: the peak and each layer's FLOP)

STEPS = 32


def best_seconds(call):
    """The shortest of five timed calls of ``call`` (it returns a tensor), after one untimed."""
    call().numpy()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        call().numpy()
        times.append(time.perf_counter() - start)
    return min(times)


def layer_rates(model, batch):
    """For each Conv2D layer of ``model``: its name, GFLOP/s of its forward product alone, and of
    forward and gradients (the kernel's; the input's too but for the first layer), at ``batch``."""
    import tensorflow as tf

    rates = []
    convolutions = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    for index, layer in enumerate(convolutions):
        x = tf.random.uniform((batch, *layer.input.shape[1:]))
        forward = 2 * layer.kernel.shape.num_elements() * layer.output.shape[1] * layer.output.shape[2] * batch
        needs_input = index > 0

        @tf.function
        def ahead(x=x, layer=layer):
            total = tf.constant(0.0)
            for _ in tf.range(STEPS):
                total += tf.reduce_sum(layer(x + total * 0))
            return total

        @tf.function
        def both(x=x, layer=layer, needs_input=needs_input):
            total = tf.constant(0.0)
            for _ in tf.range(STEPS):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = tf.reduce_sum(layer(x + total * 0))
                grads = tape.gradient(y, [layer.kernel, x] if needs_input else [layer.kernel])
                total += sum(tf.reduce_sum(g) for g in grads) * 0
            return total
        flop_both = forward * (3 if needs_input else 2)
        rates.append((layer.name, forward * STEPS / best_seconds(ahead) / 1e9,
                      flop_both * STEPS / best_seconds(both) / 1e9))
    return rates


def step_rate(model, x, y, flop_per_image):
    """GFLOP/s of Keras's own training step, ``STEPS`` of them in one compiled call on one batch
    already in memory: no data pipeline."""
    import tensorflow as tf

    x, y = tf.constant(x), tf.constant(y)

    @tf.function
    def steps():
        for _ in tf.range(STEPS):
            logs = model.train_step((x, y))
        return logs["loss"]
    return flop_per_image * len(x) * STEPS / best_seconds(steps) / 1e9


def fit_rate(model, x, y, batch, flop_per_image):
    """GFLOP/s of an epoch of the project's fit on real MNIST, after one untimed."""
    from mnistlab import training

    training.fit(model, x, y, epochs=1, batch_size=batch, verbose=0)
    start = time.perf_counter()
    training.fit(model, x, y, epochs=1, batch_size=batch, verbose=0)
    return flop_per_image * len(x) / (time.perf_counter() - start) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("MNIST_NPZ"), help="Keras's mnist.npz")
    args = parser.parse_args()
    if args.data:
        os.environ["BENCH_DATA"] = args.data
    peak = floor.peak(os.cpu_count()) / 1e9
    os.environ["KERAS_BACKEND"] = "tensorflow"
    from mnistlab import backend, plots, training

    backend.choose("tensorflow")  # as cnn_mnist.py starts: oneDNN on
    model, x, y, compile_args = bench.build("cnn")
    batch = bench.MODELS["cnn"][1]
    training.set_seed(0)
    training.compile_model(model, compile_args["optimizer"], compile_args["loss"])
    flop = floor.training_flop(plots.layer_table(model))
    print(f"float32 matrix-product peak (JAX, 2048x2048) on all {os.cpu_count()} cores: {peak:.1f} GFLOP/s")
    for name, ahead, both in layer_rates(model, batch):
        print(f"{name}: forward {ahead:.1f} GFLOP/s ({ahead / peak:.0%}), "
              f"with its gradients {both:.1f} GFLOP/s ({both / peak:.0%})")
    fit = fit_rate(model, x, y, batch, flop)
    step = step_rate(model, x[:batch], y[:batch], flop)
    print(f"training step on a batch in memory: {step:.1f} GFLOP/s ({step / peak:.0%})")
    print(f"fit on real MNIST: {fit:.1f} GFLOP/s ({fit / peak:.0%}), {step / fit:.2f}x the step's time")


if __name__ == "__main__":
    main()
