"""Lab questions 1 and 2: a multilayer perceptron on MNIST, and its L2 regularisation study.

Question 1 loads MNIST (60,000 training and 10,000 test digits of 28x28 pixels). Question 2
trains the lab's MLP (Flatten, Dense 64 relu, Dense 64 relu, Dense 10 softmax) with SGD at
learning rate 0.1 and batch 128, validating on the test set, and plots the training and
validation accuracy per epoch (2C). Question 2D (`--study`) regularises a larger 500-300 MLP
with weight decay on its hidden units, as the handout asks: an L2 penalty on both hidden
layers' kernels. It repeats each of five factors three times for 40 epochs and compares the
final validation accuracy with Hinton's 98.47%.

    python mlp_mnist.py            # the lab MLP: its own folder in runs/, and the latest in plots/ and results/
    python mlp_mnist.py --study    # then the study: 15 trials, resumable if interrupted
    python mlp_mnist.py --quick    # every part on a small subset, in seconds
"""

import functools
import math

from mnistlab import backend, cli, lab

LAB_L2_FACTORS = (1e-6, 2.5e-4, 5e-4, 7.5e-4, 1e-3)


# Command line


def parse_args(argv):
    parser = cli.make_parser(__doc__.split("\n\n")[0], epochs=lab.MLP_EPOCHS,
                             batch_size=lab.MLP_BATCH_SIZE, lr=lab.MLP_LR,
                             quick_note="the lab MLP for at most 2 epochs, then the study (even without "
                                        "--study) with 1 epoch per trial and at most 2 replicates",
                             lab_note="Lab settings: SGD, lr 0.1, batch 128; the study uses "
                                      "500-300 hidden units, 40 epochs and, in the handout's words, "
                                      "'weight decay on hidden units ... 5 regularization factors "
                                      "from 0.000001 to 0.001 ... 3 replicates': an L2 penalty on "
                                      "both hidden layers' kernels. "
                                      "The lab leaves the MLP's epochs open: at 10, reaching 97% "
                                      "depends on the seed; at 20 every seed tried does (README).")
    parser.add_argument("--hidden", type=cli.positive_int, nargs="+", default=[64, 64],
                        metavar="UNITS", help="hidden layer sizes of the lab MLP")
    study = parser.add_argument_group("regularisation study (lab question 2D)")
    study.add_argument("--study", action="store_true",
                       help="after the lab MLP, run the L2 study (resumes where it stopped)")
    study.add_argument("--study-hidden", type=cli.positive_int, nargs="+", default=[500, 300],
                       metavar="UNITS", help="hidden layer sizes in the study")
    study.add_argument("--l2", type=cli.non_negative_float, nargs="+", default=list(LAB_L2_FACTORS),
                       metavar="FACTOR", help="L2 factors (the handout: 5 from 0.000001 to 0.001)")
    study.add_argument("--l2-layers", choices=["all", "first"], default="all",
                       help="hidden layers whose kernels carry the L2 penalty: all of them (the "
                            "handout's 'weight decay on hidden units', as the lab report did) or "
                            "only the first")
    study.add_argument("--study-schedule", choices=["constant", "cosine"], default="constant",
                       help="the study's learning rate: constant, as in the lab, or cosine-decayed "
                            "to 0 over each trial's epochs")
    study.add_argument("--replicates", type=cli.positive_int, default=3,
                       help="trials per factor, each from other initial weights")
    study.add_argument("--study-epochs", type=cli.positive_int, default=40,
                       help="epochs per study trial")
    cli.add_workers_flag(study, "study trials")
    args = cli.parse(parser, argv)
    if args.quick:
        args.epochs, args.study_epochs = min(args.epochs, 2), 1
        args.replicates = min(args.replicates, 2)
        args.study = True
    cli.check_fits(cli.dense_parameters([784, *args.hidden, 10]), "the lab MLP", "--hidden")
    if args.study:
        cli.check_fits(cli.dense_parameters([784, *args.study_hidden, 10]), "the study's MLP", "--study-hidden")
    return args


if __name__ == "__main__":
    cli.preflight(parse_args, "jax")  # before Keras loads: --help and bad input answer at once

# The dense models train several times faster on JAX than on TensorFlow on a CPU (see bench/);
# every backend works: KERAS_BACKEND=tensorflow python mlp_mnist.py
keras = backend.load("jax")
from mnistlab import data, experiment, l2_study, parallel, results, runs, training


# Model


def build_mlp(hidden=(64, 64), l2=0.0, l2_layers="all", input_shape=(28, 28), num_classes=10):
    """Flatten, one relu Dense layer per entry of ``hidden``, softmax output.

    ``l2`` puts an L2 weight penalty on the kernels of every hidden layer (``l2_layers="all"``,
    the handout's "weight decay on hidden units" in question 2D) or of the first one only.
    """
    layers = [keras.Input(shape=input_shape), keras.layers.Flatten()]
    for i, units in enumerate(hidden):
        penalised = l2 > 0 and (l2_layers == "all" or i == 0)
        regularizer = keras.regularizers.L2(l2) if penalised else None
        layers.append(keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer))
    layers.append(keras.layers.Dense(num_classes, activation="softmax"))
    return keras.Sequential(layers, name=f"mlp_{'_'.join(map(str, hidden))}")


def compile_mlp(model, lr, schedule="constant", total_steps=None):
    """Plain SGD, as in the lab; ``schedule="cosine"`` decays ``lr`` to 0 over ``total_steps``."""
    optimizer = keras.optimizers.SGD(learning_rate=training.learning_rate(lr, schedule, total_steps))
    return training.compile_model(model, optimizer, "categorical_crossentropy")


# Training and evaluation of the lab MLP (questions 2A-2C)


def run_lab_mlp(run, args, train, test):
    training.set_seed(args.seed)
    model = compile_mlp(build_mlp(args.hidden), args.lr)
    title = f"Lab MLP {'-'.join(map(str, args.hidden))}, SGD lr {args.lr:g}, batch {args.batch_size}"
    return experiment.train_and_report(run, model, train, test, name="mlp_mnist", title=title, epochs=args.epochs,
                                       batch_size=args.batch_size, config=vars(args), save_model=args.save_model)


# The regularisation study (question 2D)


def study_settings(args):
    """What a trial's result depends on; finished trials are reused only when these match."""
    return {"hidden": list(args.study_hidden), "l2_layers": args.l2_layers, "epochs": args.study_epochs,
            "lr": args.lr, "schedule": args.study_schedule, "batch_size": args.batch_size,
            "seed": args.seed, "quick": args.quick, "backend": keras.backend.backend()}


def run_trial(settings, l2, replicate, train, test):
    """Train one study MLP with L2 factor ``l2``; return its per-epoch history."""
    # Replicate r starts from the same initial weights at every factor (common random
    # numbers), so differences between factors are not masked by initialisation luck.
    training.set_seed(settings["seed"] + replicate)
    steps = settings["epochs"] * math.ceil(len(train[0]) / settings["batch_size"])
    model = compile_mlp(build_mlp(settings["hidden"], l2, settings["l2_layers"]), settings["lr"],
                        settings["schedule"], steps)
    # The study compares final validation accuracies only: validating once, after the last
    # epoch, gives the same number for less work.
    history = training.fit(model, *train, epochs=settings["epochs"], batch_size=settings["batch_size"],
                           validation_data=test, validation_freq=settings["epochs"], verbose=0)
    return history


def study_trial(settings, data_splits, job):
    """One trial as a worker runs it: ``job`` is (l2, replicate); returns (history, seconds)."""
    clock = results.Stopwatch()
    history = run_trial(settings, *job, *data_splits)
    return history, clock.seconds()


def run_study(run, settings, factors, replicates, workers, load):
    """Train every (factor, replicate) trial not already in the run's trial store, saving each
    as it finishes (``load()`` gives a worker its data); then write the study's record, table
    and figure. Returns the study's rows."""
    trials_path = run.result(f"{l2_study.NAME}_trials.json")
    store = results.read_checked(trials_path, {"trials": list}, required=("trials",)) or {"trials": []}
    for trial in store["trials"]:
        results.check_kinds(trial, l2_study.TRIAL_FIELDS, trials_path, what="trials", required=l2_study.TRIAL_FIELDS)
    done = {(t["l2"], t["replicate"]) for t in store["trials"] if t["settings"] == settings}
    todo = [(l2, r) for l2 in factors for r in range(replicates) if (l2, r) not in done]
    total = len(factors) * replicates
    workers = parallel.worker_count(workers, len(todo))
    print(f"\nRegularisation study: {total} trials, {total - len(todo)} already saved in {trials_path}"
          + (f"; training {len(todo)}, {workers} at a time" if todo else ""), flush=True)
    clock = results.Stopwatch()
    for count, ((l2, replicate), (history, seconds)) in enumerate(
            parallel.run(functools.partial(study_trial, settings), todo, load, workers), 1):
        diverged = results.diverged_at(history)
        # A diverged trial stops before its one validation: it has no accuracy to average.
        final = history.get("val_accuracy", [None])[-1] if not diverged else None
        store["trials"].append({"settings": settings, "l2": l2, "replicate": replicate,
                                "final_val_accuracy": final, "diverged_at_epoch": diverged,
                                "history": history, "wall_seconds": seconds})
        results.write_json(trials_path, store)
        # Once every worker has finished one, the pace so far is a fair guide to the rest.
        pace = count >= workers and count < len(todo)
        left = f", about {clock.seconds() / count * (len(todo) - count):.0f} s left" if pace else ""
        outcome = (f"diverged in epoch {diverged} (try a smaller --lr)" if diverged
                   else f"final validation accuracy {results.percent(final)}")
        print(f"  trial {total - len(todo) + count}/{total} (L2 {l2:g}, replicate {replicate + 1}): "
              f"{outcome} in {seconds:.0f} s{left}", flush=True)

    trials = [t for t in store["trials"] if t["settings"] == settings and t["l2"] in factors]
    rows = l2_study.summarise(trials, factors)
    table = l2_study.format_table(rows)
    print("\n" + table)
    wall = round(clock.seconds(), 1)
    run.write_record(l2_study.NAME, {"settings": settings, "rows": rows, "hinton_accuracy": lab.HINTON,
                                     "trials_run": len(todo), "workers": workers, "wall_seconds": wall,
                                     "trials_seconds": round(sum(t["wall_seconds"] for t in trials), 1)})
    results.write_text(run.result(f"{l2_study.NAME}.md"),
                       table + f"\n{len(todo)} trials trained in {wall:.0f} s, {workers} at a time\n")
    l2_study.plot_study(rows, settings, run.plot(f"{l2_study.NAME}.png"))
    return rows


def main(argv=None):
    args = parse_args(argv)
    load = functools.partial(data.load_preprocessed, args.data, args.quick)
    splits = [load()]  # a bad data file fails here, before the run's folder is made
    with runs.Run("mlp_mnist", args, comparisons=[(l2_study.compare_runs, f"{l2_study.NAME}_runs")]) as run:
        # The lab MLP takes the data and drops it: the study's workers load their own.
        run.part("lab MLP", lambda: run_lab_mlp(run, args, *splits.pop()))
        if args.study:
            run.part("L2 study", lambda: run_study(run, study_settings(args), args.l2, args.replicates,
                                                   args.workers, load))
    return 0


if __name__ == "__main__":
    cli.exit_script(main)
