"""A lab script's start in one straight line (``start``): its flags, the lab's values their
defaults, then what they name checked once each before Keras loads. Light: it loads at a first line.
"""

import argparse
import math
import os
import sys

from mnistlab import cli, lab

# numpy's generators take seeds below 2**32; the scripts add small offsets (replicate, epoch,
# noise draw) to the seed, so the flag stops well short of that.
MAX_SEED = 2**31 - 1
L2_FACTORS = (1e-6, 2.5e-4, 5e-4, 7.5e-4, 1e-3)  # the handout: 5 from 0.000001 to 0.001
CNN_EPOCHS = {"lab": 12, "improved": 30}  # of the lab CNN and of --model improved
ACCURACY_LEVELS = tuple(round(0.1 * i, 1) for i in range(11))  # question 4C
# Each script's epochs, batch size and learning rate, what --quick does beyond the data, and the epilog.
COMMON = {
    "mlp_mnist": (lab.MLP_EPOCHS, lab.MLP_BATCH_SIZE, lab.MLP_LR,
                  "the lab MLP for at most 2 epochs, then the study (even without --study) with 1 epoch per "
                  "trial and at most 2 replicates",
                  "Lab settings: SGD, lr 0.1, batch 128; the study uses 500-300 hidden units, 40 epochs and, in "
                  "the handout's words, 'weight decay on hidden units ... 5 regularization factors from 0.000001 "
                  "to 0.001 ... 3 replicates': an L2 penalty on both hidden layers' kernels. The lab leaves the "
                  f"MLP's epochs open: {lab.MLP_EPOCHS_WHY} (docs/scripts.md)."),
    "cnn_mnist": (None, 128, 1e-3, "at most 2 epochs",
                  "Lab settings: the architecture, batch 128, validation on the test set. The lab's Adam at 1e-3 "
                  "for 10 epochs reaches about 99.07%, short of its 99.15%; the default cosine decay of the same "
                  "Adam rate to 0 over 12 epochs reaches it (docs/scripts.md)."),
    "denoise_autoencoder": (32, 64, 1e-3, "at most 2 epochs for every autoencoder and for a lab MLP trained "
                                          "here, and 2 noise draws per level",
                            "Lab settings: adam (lr 1e-3), binary cross-entropy, noise 0.4, 32 epochs, batch 64.")}

class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show each flag's default, except where there is none to show."""

    def _get_help_string(self, action):
        return action.help if action.default is None or action.default is False else super()._get_help_string(action)

def _checked(kind, what, accept, requirement):
    """An argparse ``type`` that parses a finite ``kind`` and requires ``accept(value)``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, got {text}")
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value
    return parse

positive_int = _checked(int, "a whole number", lambda v: v >= 1, "a positive whole number")
positive_float = _checked(float, "a number", lambda v: v > 0, "greater than 0")
non_negative_float = _checked(float, "a number", lambda v: v >= 0, "0 or more")
fraction = _checked(float, "a number", lambda v: 0 <= v <= 1, "a fraction in [0, 1]")
seed = _checked(int, "a whole number", lambda v: 0 <= v <= MAX_SEED, f"a whole number from 0 to {MAX_SEED}")

def add_workers_flags(group, what, workers):
    """``--workers`` (``workers`` by default) and ``--cluster``: where ``what`` train side by side."""
    group.add_argument("--workers", type=positive_int, default=None,
                       help=f"{what} trained side by side, each single-threaded on its own CPU core "
                            "(each worker holds its own data and backend); 1 trains them one after "
                            f"the other on all cores (default: {workers}, one per core up to 4; 1 with --quick, "
                            "whose trainings are shorter than a worker's start; 1 on a GPU, which the trainings "
                            "share one at a time, each taking only the memory it uses)")
    group.add_argument("--cluster", metavar="ADDRESS",
                       help=f"train the {what} as tasks of a Dask cluster instead: its scheduler's address "
                            "(tcp://HOST:8786) or scheduler file; the workers need only the requirements "
                            "installed, this machine sends them the code and the data (docs/cluster.md)")

def add_mlp_flags(parser, workers):
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=list(lab.MLP_HIDDEN),
                        metavar="UNITS", help="hidden layer sizes of the lab MLP")
    study = parser.add_argument_group("regularisation study (lab question 2D)")
    study.add_argument("--study", action="store_true", help="after the lab MLP, run the L2 study (resumes where it stopped)")
    study.add_argument("--study-hidden", type=positive_int, nargs="+", default=list(lab.STUDY_HIDDEN),
                       metavar="UNITS", help="hidden layer sizes in the study")
    study.add_argument("--l2", type=non_negative_float, nargs="+", default=list(L2_FACTORS),
                       metavar="FACTOR", help="L2 factors (the handout: 5 from 0.000001 to 0.001)")
    study.add_argument("--l2-layers", choices=["all", "first"], default="all",
                       help="hidden layers whose kernels carry the L2 penalty: all of them (the handout's 'weight "
                            "decay on hidden units', as the lab report did) or only the first")
    study.add_argument("--study-schedule", choices=["constant", "cosine"], default="constant",
                       help="the study's learning rate: constant, as in the lab, or cosine-decayed to 0 over each "
                            "trial's epochs")
    study.add_argument("--replicates", type=positive_int, default=3, help="trials per factor, each from other initial weights")
    study.add_argument("--study-epochs", type=positive_int, default=40, help="epochs per study trial")
    add_workers_flags(study, "study trials", workers)

def add_cnn_flags(parser, workers):
    parser.add_argument("--model", choices=sorted(CNN_EPOCHS), default="lab", help="the lab's CNN, or the improved one")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam", help="Adam, or SGD with momentum 0.9")
    parser.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                        help="learning rate: cosine-decayed to 0 over the run, or constant")

def add_autoencoder_flags(parser, workers):
    parser.add_argument("--noise", type=fraction, default=0.4,
                        help="salt-and-pepper level the autoencoder is trained at: fresh noise every epoch, each "
                             "image's level drawn from a band of this mean (0-0.8 for 0.4)")
    parser.add_argument("--fixed-noise", action="store_true",
                        help="train on one noisy copy with every image at exactly --noise, as the lab did")
    parser.add_argument("--hidden", type=positive_int, default=128, help="units around the code")
    parser.add_argument("--latent", type=positive_int, default=96, help="size of the latent code")
    study = parser.add_argument_group("accuracy study (lab question 4C)")
    study.add_argument("--levels", type=fraction, nargs="+", default=list(ACCURACY_LEVELS),
                       metavar="LEVEL", help="noise levels to score the classifier at")
    study.add_argument("--draws", type=positive_int, default=3, help="noise draws per level, for the error bars")
    study.add_argument("--per-level", action="store_true",
                       help="retrain an autoencoder at each level instead of using one for all")
    study.add_argument("--classifier", metavar="PATH", nargs="+",
                       help="saved .keras MNIST classifiers, MLP or CNN, to score the images with; default: the "
                            "best of questions 2-3 saved under the results folder (the lab CNN after cnn_mnist.py "
                            "--save-model) and the lab MLP (mlp_mnist.py --save-model), trained here if not saved")
    study.add_argument("--classifier-epochs", type=positive_int, default=lab.MLP_EPOCHS,
                       help="epochs for the lab MLP when it is trained here, and for question 4B's reader (the lab "
                            "MLP trained on noisy digits of every level)")
    add_workers_flags(study, "--per-level autoencoders", workers)

ADD_FLAGS = {"mlp_mnist": add_mlp_flags, "cnn_mnist": add_cnn_flags, "denoise_autoencoder": add_autoencoder_flags}

def check_fits(parameters, what, flag):
    """Refuse a model whose weights, gradients and optimizer state (four float32 copies) exceed memory."""
    import psutil

    need, have = 16 * parameters, psutil.virtual_memory().total
    if need > have:
        raise cli.LabError(f"{what} would have {parameters:,} parameters, about {need / 2**30:,.0f} GiB with its "
                           f"gradients and optimizer state, more than this machine's {have / 2**30:,.0f} GiB "
                           f"of memory; pass smaller {flag}")

def parse(script, argv=None, doc=""):
    """The flags of ``script``, ``args.changed`` those not at the lab's value (``lab.flag_label``)."""
    from mnistlab import data, parallel

    epochs, batch_size, lr, quick_note, epilog = COMMON[script]
    parser = cli.LabParser(prog=f"{script}.py", description=doc.split("\n\n")[0], epilog=epilog,
                           formatter_class=HelpFormatter)
    common = parser.add_argument_group("common flags (every lab script)")
    common.add_argument("--data", metavar="PATH", default=None,
                        help="local Keras mnist.npz; if unset, the MNIST_NPZ environment variable, "
                             "else keras.datasets.mnist.load_data() (needs internet once)")
    common.add_argument("--out", metavar="DIR", default=None,
                        help="each run writes into its own folder DIR/runs/<script>-<date>-<time>-<flags>/ "
                             "(rerunning a stopped run's command goes on in it); once complete, its figures are "
                             "copied to DIR/plots and its numbers to DIR/results (default: this folder, or ./quick "
                             "with --quick)")
    common.add_argument("--epochs", type=positive_int, default=epochs,
                        help="training epochs" + (f" (default: {CNN_EPOCHS['lab']} for the lab CNN, "
                                                  f"{CNN_EPOCHS['improved']} for --model improved)" if not epochs else ""))
    common.add_argument("--batch-size", type=positive_int, default=batch_size, help="minibatch size")
    common.add_argument("--lr", type=positive_float, default=lr, help="learning rate")
    common.add_argument("--seed", type=seed, default=0, help="random seed; the same seed gives the same numbers on CPU")
    train, test = data.QUICK_SIZES
    common.add_argument("--quick", action="store_true",
                        help=f"a check that everything works, in seconds: {train:,} training and {test:,} test "
                             f"digits instead of 60,000 and 10,000; {quick_note}; writes under ./quick unless "
                             "--out is given")
    common.add_argument("--save-model", action="store_true", help="also write the trained model as a .keras file")
    ADD_FLAGS[script](parser, parallel.default_workers())
    args = parser.parse_args(argv)
    args.changed = [lab.flag_label(dest, value) for dest, value in vars(args).items()
                    if dest not in lab.NOT_SETTINGS and value != parser.get_default(dest)]
    args.out = args.out or lab.default_out(args.quick)
    if getattr(args, "workers", 0) is None:
        args.workers = 1 if args.quick else parallel.default_workers()
    args.epochs = args.epochs or CNN_EPOCHS[args.model]
    if args.quick:
        args.epochs = min(args.epochs, 2)
        if script == "mlp_mnist":
            args.study, args.study_epochs, args.replicates = True, 1, min(args.replicates, 2)
        if script == "denoise_autoencoder":
            args.classifier_epochs, args.draws = 2, min(args.draws, 2)
    if script == "mlp_mnist":
        check_fits(data.dense_parameters(data.mlp_sizes(args.hidden)), "the lab MLP", "--hidden")
        if args.study:
            check_fits(data.dense_parameters(data.mlp_sizes(args.study_hidden)), "the study's MLP", "--study-hidden")
    if script == "denoise_autoencoder":
        check_fits(data.dense_parameters(data.autoencoder_sizes(args.hidden, args.latent)),
                   "the autoencoder", "--hidden or --latent")
    if getattr(args, "cluster", None):
        parallel.check_cluster(args.cluster)  # before any training
    return args

def prepare(script, args):
    """The backend, data file, output folder and earlier runs checked once; the run to go on with, or a new one."""
    from mnistlab import backend, data, records, runs

    backend.choose(lab.SCRIPTS[script]["backend"])
    if data.resolve_source(args.data):  # a local file: checked now (the download needs Keras)
        data.load_mnist(args.data)
    records.check_outputs(args.out)
    return runs.Run(script, args, records.all_runs(args.out), records.fingerprint(script))

def start(module, script, doc):
    """``(args, run)`` of a script run as a command, Keras loaded; imported, ``(None, None)``."""
    if module != "__main__":
        from mnistlab import backend

        if "keras" not in sys.modules:
            backend.choose(lab.SCRIPTS[script]["backend"])
        backend.load()
        return None, None
    prog = f"{script}.py"
    cli.from_now(prog)
    from mnistlab import backend

    try:
        args = parse(script, sys.argv[1:], doc)
        run = prepare(script, args)
    except Exception as exc:
        cli.exit_now(cli.ending(prog, exc))
    keras = backend.load(os.environ["KERAS_BACKEND"])
    print(f"Training on {backend.device()} ({keras.backend.backend()} backend)", flush=True)
    return args, run
