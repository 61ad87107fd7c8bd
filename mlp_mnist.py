"""Lab questions 1 and 2: a multilayer perceptron on MNIST, and its L2 regularisation study.

Question 1 loads MNIST (60,000 training and 10,000 test digits of 28x28 pixels), scales the
pixels to [0, 1] and one-hots the labels. Question 2 trains the lab's MLP (Flatten, Dense 64
relu, Dense 64 relu, Dense 10 softmax: 2A) on the categorical cross-entropy (2B) with SGD at
learning rate 0.1 and batch 128, validating on the test set, and plots the training and
validation accuracy per epoch (2C). Question 2D (`--study`) regularises a larger 500-300 MLP
with weight decay on its hidden units, as the handout asks: an L2 penalty on both hidden
layers' kernels. It repeats each of five factors three times for 40 epochs and compares the
final validation accuracy with Hinton's 98.47%.

    python mlp_mnist.py            # the lab MLP: its own folder in runs/, and the latest in plots/ and results/
    python mlp_mnist.py --study    # then the study: 15 trials, resumable if interrupted
    python mlp_mnist.py --quick    # every part on a small subset, in seconds
"""

from mnistlab import flags

args, run = flags.start(__name__, "mlp_mnist", __doc__)  # --help and bad input answer before Keras loads

import functools
import math

import keras

from mnistlab import cli, data, l2_study, lab, parallel, plots, records, training

NAME = "mlp_mnist"  # the lab MLP's record, figures and saved model

# Question 1: the data

def load_data(path=None, quick=False):
    """MNIST as ``(x_train, y_train), (x_test, y_test)``: pixels as float32 in [0, 1], labels one-hot."""
    (x_train, y_train), (x_test, y_test) = data.load_mnist(path, quick)
    x_train, x_test = data.scale(x_train), data.scale(x_test)
    y_train = keras.utils.to_categorical(y_train, data.CLASSES)
    y_test = keras.utils.to_categorical(y_test, data.CLASSES)
    return (x_train, y_train), (x_test, y_test)

# Question 2A: the model

def build_mlp(hidden=lab.MLP_HIDDEN, l2=0.0, l2_layers="all"):
    """Flatten, relu Dense layers of ``hidden``, softmax; ``l2`` on every hidden kernel (2D) or the first's."""
    sizes = data.mlp_sizes(hidden)
    layers = [keras.Input(shape=(28, 28)), keras.layers.Flatten()]
    for i, units in enumerate(sizes[1:-1]):
        penalised = l2 > 0 and (l2_layers == "all" or i == 0)
        regularizer = keras.regularizers.L2(l2) if penalised else None
        layers.append(keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer))
    layers.append(keras.layers.Dense(sizes[-1], activation="softmax"))
    return keras.Sequential(layers, name=f"mlp_{'_'.join(map(str, hidden))}")

# Question 2B: the loss and the optimiser

def compile_mlp(model, lr, schedule="constant", total_steps=None):
    """Plain SGD on the categorical cross-entropy, as in the lab (or cosine-decayed to 0)."""
    optimizer = keras.optimizers.SGD(learning_rate=training.learning_rate(lr, schedule, total_steps))
    return training.compile_model(model, optimizer, "categorical_crossentropy")

# Question 2C: training, evaluation and the curves

def train_lab_mlp(run, args, train, test):
    """Build, compile, fit, evaluate and plot the lab MLP; returns its record."""
    (x_train, y_train), (x_test, y_test) = train, test
    training.set_seed(args.seed)
    model = compile_mlp(build_mlp(args.hidden), args.lr)
    plots.print_summary(model)
    checkpoint = training.checkpoint(run, NAME, args)
    history = training.fit(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                           validation_data=(x_test, y_test), checkpoint=checkpoint)
    scores = training.evaluate(model, x_test, y_test, args.batch_size)

    title = f"Lab MLP {'-'.join(map(str, args.hidden))}, SGD lr {args.lr:g}, batch {args.batch_size}"
    plots.plot_training(history, model, run.plot, NAME, title)
    if args.save_model:
        records.write_atomic(run.result(f"{NAME}.keras"), model.save)
    return run.write_record(NAME, checkpoint.record(model, history, scores,
                                                    examples={"train": len(y_train), "test": len(y_test)}))

# Question 2D: the regularisation study

def study_settings(args):
    """What a trial's result depends on; finished trials are reused only when these match."""
    return {"hidden": list(args.study_hidden), "l2_layers": args.l2_layers, "epochs": args.study_epochs,
            "lr": args.lr, "schedule": args.study_schedule, "batch_size": args.batch_size,
            "seed": args.seed, "quick": args.quick, "backend": keras.backend.backend()}

def run_trial(settings, splits, job):
    """Train one study MLP, ``job`` = (L2 factor, replicate); return its per-epoch history."""
    l2, replicate = job
    (x_train, y_train), test = splits
    # Replicate r starts from the same initial weights at every factor (common random
    # numbers), so differences between factors are not masked by initialisation luck.
    training.set_seed(settings["seed"] + replicate)
    steps = settings["epochs"] * math.ceil(len(x_train) / settings["batch_size"])
    model = compile_mlp(build_mlp(settings["hidden"], l2, settings["l2_layers"]), settings["lr"],
                        settings["schedule"], steps)
    # The study compares final validation accuracies only: validating once, after the last
    # epoch, gives the same number for less work.
    return training.fit(model, x_train, y_train, epochs=settings["epochs"], batch_size=settings["batch_size"],
                        validation_data=test, validation_freq=settings["epochs"], verbose=0)

def main(args, run):
    """The lab MLP, then (--study) the study, each a part of ``run``: its folder under runs/."""
    load = functools.partial(load_data, quick=args.quick)
    splits = [load(args.data)]
    with run:
        # The lab MLP takes the data and drops it: the study's workers load their own.
        run.part("lab MLP", train_lab_mlp, run, args, *splits.pop())
        if args.study:
            run.part("L2 study", l2_study.run_trials, run, study_settings(args), args.l2, args.replicates,
                     parallel.trainings(NAME, args), run_trial, load)
    return 0

if __name__ == "__main__":
    cli.exit_command(main, args, run)
