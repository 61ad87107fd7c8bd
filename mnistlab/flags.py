"""The flags of the three scripts, each with the lab's value as its default, and their checks;
bad input ends with one line and exit 2 before Keras loads.

    args = flags.parse("mlp_mnist", argv)
"""

import argparse
import math
import sys

import psutil

from mnistlab import cluster, data, lab, parallel
from mnistlab.errors import LabError
from mnistlab.exits import LabParser

# numpy's generators take seeds below 2**32; the scripts add small offsets (replicate, epoch,
# noise draw) to the seed, so the flag stops well short of that.
MAX_SEED = 2**31 - 1
# Flags that say where a run reads and writes and on how many cores, not what it computes.
NOT_SETTINGS = ("data", "out", "workers", "cluster")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show each flag's default, except where there is none to show."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


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


def make_parser(script, *, epochs, batch_size, lr, quick_note, lab_note="", epochs_help="training epochs"):
    """A parser with the flags every script shares, at the lab's values given."""
    parser = LabParser(prog=f"{script}.py", epilog=lab_note,
                       formatter_class=HelpFormatter)
    common = parser.add_argument_group("common flags (every lab script)")
    common.add_argument("--data", metavar="PATH", default=None,
                        help="local Keras mnist.npz; if unset, the MNIST_NPZ environment variable, "
                             "else keras.datasets.mnist.load_data() (needs internet once)")
    common.add_argument("--out", metavar="DIR", default=None,
                        help="each run writes into its own folder DIR/runs/<script>-<date>-<time>-<flags>/ "
                             "(rerunning a stopped run's command goes on in it); once complete, its "
                             "figures are copied to DIR/plots and its numbers to DIR/results "
                             "(default: this folder, or ./quick with --quick)")
    common.add_argument("--epochs", type=positive_int, default=epochs, help=epochs_help)
    common.add_argument("--batch-size", type=positive_int, default=batch_size, help="minibatch size")
    common.add_argument("--lr", type=positive_float, default=lr, help="learning rate")
    common.add_argument("--seed", type=seed, default=0, help="random seed; the same seed gives the same numbers on CPU")
    common.add_argument("--quick", action="store_true",
                        help=f"a check that everything works, in seconds: {quick_data_note()}; {quick_note}; "
                             "writes under ./quick unless --out is given")
    common.add_argument("--save-model", action="store_true", help="also write the trained model as a .keras file")
    return parser


def quick_data_note():
    train, test = data.QUICK_SIZES
    return f"{train:,} training and {test:,} test digits instead of 60,000 and 10,000"


def add_workers_flag(group, what):
    """``--workers`` and ``--cluster``: where ``what`` train side by side."""
    group.add_argument("--workers", type=positive_int, default=None,
                       help=f"{what} trained side by side, each single-threaded on its own CPU core "
                            "(each worker holds its own data and backend); 1 trains them one after "
                            f"the other on all cores (default: {parallel.default_workers()}, one per "
                            "core up to 4; 1 with --quick, whose trainings are shorter than a worker's start; "
                            "1 on a GPU, which the trainings share one at a time, each taking only the memory "
                            "it uses)")
    group.add_argument("--cluster", metavar="ADDRESS",
                       help=f"train the {what} as tasks of a Dask cluster instead: its scheduler's address "
                            "(tcp://HOST:8786) or scheduler file; the workers need only the requirements "
                            "installed, this machine sends them the code and the data (docs/cluster.md)")


# The scripts' flags


L2_FACTORS = (1e-6, 2.5e-4, 5e-4, 7.5e-4, 1e-3)  # the handout: 5 from 0.000001 to 0.001
CNN_EPOCHS = {"lab": 12, "improved": 30}  # of the lab CNN and of --model improved
ACCURACY_LEVELS = tuple(round(0.1 * i, 1) for i in range(11))  # question 4C


def mlp_parser():
    parser = make_parser("mlp_mnist", epochs=lab.MLP_EPOCHS, batch_size=lab.MLP_BATCH_SIZE, lr=lab.MLP_LR,
                         quick_note="the lab MLP for at most 2 epochs, then the study (even without "
                                    "--study) with 1 epoch per trial and at most 2 replicates",
                         lab_note="Lab settings: SGD, lr 0.1, batch 128; the study uses "
                                  "500-300 hidden units, 40 epochs and, in the handout's words, "
                                  "'weight decay on hidden units ... 5 regularization factors "
                                  "from 0.000001 to 0.001 ... 3 replicates': an L2 penalty on "
                                  "both hidden layers' kernels. "
                                  f"The lab leaves the MLP's epochs open: {lab.MLP_EPOCHS_WHY} (docs/scripts.md).")
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=list(lab.MLP_HIDDEN),
                        metavar="UNITS", help="hidden layer sizes of the lab MLP")
    study = parser.add_argument_group("regularisation study (lab question 2D)")
    study.add_argument("--study", action="store_true",
                       help="after the lab MLP, run the L2 study (resumes where it stopped)")
    study.add_argument("--study-hidden", type=positive_int, nargs="+", default=list(lab.STUDY_HIDDEN),
                       metavar="UNITS", help="hidden layer sizes in the study")
    study.add_argument("--l2", type=non_negative_float, nargs="+", default=list(L2_FACTORS),
                       metavar="FACTOR", help="L2 factors (the handout: 5 from 0.000001 to 0.001)")
    study.add_argument("--l2-layers", choices=["all", "first"], default="all",
                       help="hidden layers whose kernels carry the L2 penalty: all of them (the "
                            "handout's 'weight decay on hidden units', as the lab report did) or "
                            "only the first")
    study.add_argument("--study-schedule", choices=["constant", "cosine"], default="constant",
                       help="the study's learning rate: constant, as in the lab, or cosine-decayed "
                            "to 0 over each trial's epochs")
    study.add_argument("--replicates", type=positive_int, default=3,
                       help="trials per factor, each from other initial weights")
    study.add_argument("--study-epochs", type=positive_int, default=40,
                       help="epochs per study trial")
    add_workers_flag(study, "study trials")
    return parser


def mlp_quick(args):
    args.epochs, args.study_epochs = min(args.epochs, 2), 1
    args.replicates = min(args.replicates, 2)
    args.study = True


def mlp_checks(args):
    check_fits(lab.dense_parameters(lab.mlp_sizes(args.hidden)), "the lab MLP", "--hidden")
    if args.study:
        check_fits(lab.dense_parameters(lab.mlp_sizes(args.study_hidden)), "the study's MLP", "--study-hidden")


def cnn_parser():
    parser = make_parser(
        "cnn_mnist", epochs=None, batch_size=128, lr=1e-3,
        quick_note="at most 2 epochs",
        epochs_help=f"training epochs (default: {CNN_EPOCHS['lab']} for the lab CNN, "
                    f"{CNN_EPOCHS['improved']} for --model improved)",
        lab_note="Lab settings: the architecture, batch 128, validation on the test set. The "
                 "lab's Adam at 1e-3 for 10 epochs reaches about 99.07%, short of its 99.15%; "
                 "the default cosine decay of the same Adam rate to 0 over 12 epochs reaches it "
                 "(docs/scripts.md).")
    parser.add_argument("--model", choices=sorted(CNN_EPOCHS), default="lab",
                        help="the lab's CNN, or the improved one")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                        help="Adam, or SGD with momentum 0.9")
    parser.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                        help="learning rate: cosine-decayed to 0 over the run, or constant")
    return parser


def cnn_defaults(args):
    args.epochs = args.epochs or CNN_EPOCHS[args.model]


def cnn_quick(args):
    args.epochs = min(args.epochs, 2)


def autoencoder_parser():
    parser = make_parser("denoise_autoencoder", epochs=32, batch_size=64, lr=1e-3,
                         quick_note="at most 2 epochs for every autoencoder and for a lab MLP "
                                    "trained here, and 2 noise draws per level",
                         lab_note="Lab settings: adam (lr 1e-3), binary cross-entropy, "
                                  "noise 0.4, 32 epochs, batch 64.")
    parser.add_argument("--noise", type=fraction, default=0.4,
                        help="salt-and-pepper level the autoencoder is trained at: fresh noise every "
                             "epoch, each image's level drawn from a band of this mean (0-0.8 for 0.4)")
    parser.add_argument("--fixed-noise", action="store_true",
                        help="train on one noisy copy with every image at exactly --noise, as the lab did")
    parser.add_argument("--hidden", type=positive_int, default=128, help="units around the code")
    parser.add_argument("--latent", type=positive_int, default=96, help="size of the latent code")
    study = parser.add_argument_group("accuracy study (lab question 4C)")
    study.add_argument("--levels", type=fraction, nargs="+", default=list(ACCURACY_LEVELS),
                       metavar="LEVEL", help="noise levels to score the classifier at")
    study.add_argument("--draws", type=positive_int, default=3,
                       help="noise draws per level, for the error bars")
    study.add_argument("--per-level", action="store_true",
                       help="retrain an autoencoder at each level instead of using one for all")
    study.add_argument("--classifier", metavar="PATH", nargs="+",
                       help="saved .keras MNIST classifiers, MLP or CNN, to score the images with; "
                            "default: the best of questions 2-3 saved under the results folder "
                            "(the lab CNN after cnn_mnist.py --save-model) and the lab MLP "
                            "(mlp_mnist.py --save-model), trained here if not saved")
    study.add_argument("--classifier-epochs", type=positive_int, default=lab.MLP_EPOCHS,
                       help="epochs for the lab MLP when it is trained here, and for question 4B's "
                            "reader (the lab MLP trained on noisy digits of every level)")
    add_workers_flag(study, "--per-level autoencoders")
    return parser


def autoencoder_quick(args):
    args.epochs, args.classifier_epochs, args.draws = min(args.epochs, 2), 2, min(args.draws, 2)


def autoencoder_checks(args):
    check_fits(lab.dense_parameters(lab.autoencoder_sizes(args.hidden, args.latent)),
               "the autoencoder", "--hidden or --latent")


# Each script's parser, then what fills defaults that depend on other flags, what --quick
# shrinks, and the checks made before Keras loads.
SCRIPT_FLAGS = {
    "mlp_mnist": (mlp_parser, None, mlp_quick, mlp_checks),
    "cnn_mnist": (cnn_parser, cnn_defaults, cnn_quick, None),
    "denoise_autoencoder": (autoencoder_parser, None, autoencoder_quick, autoencoder_checks),
}


_AHEAD = {}  # the flags a lab command's start parsed and checked, which its script's main then takes


def parse_ahead(script, argv, doc):
    """``parse`` at a lab command's start; the script's ``main`` then gets these same flags."""
    args = _AHEAD[script, _given(argv)] = parse(script, argv, doc)
    return args


def _given(argv):
    return tuple(sys.argv[1:] if argv is None else argv)


def parse(script, argv=None, doc=""):
    """The flags of ``script`` (``doc`` opens --help), with ``args.changed`` those given another
    value than the lab's, as ``"lr 0.05"`` (what runs are labelled by)."""
    if (script, _given(argv)) in _AHEAD:
        return _AHEAD.pop((script, _given(argv)))
    make, defaults, quick, checks = SCRIPT_FLAGS[script]
    parser = make()
    parser.description = doc.split("\n\n")[0]
    args = parser.parse_args(argv)
    args.changed = [describe_flag(dest, value) for dest, value in vars(args).items()
                    if dest not in NOT_SETTINGS and value != parser.get_default(dest)]
    args.out = args.out or lab.default_out(args.quick)
    if getattr(args, "workers", 0) is None:
        args.workers = 1 if args.quick else parallel.default_workers()
    for step in (defaults, quick if args.quick else None, checks):
        if step:
            step(args)
    if getattr(args, "cluster", None):
        cluster.check(args.cluster)  # before any training
    return args


def describe_flag(dest, value):
    name = dest.replace("_", "-")
    if value is True:
        return name
    values = value if isinstance(value, list) else [value]
    return name + " " + " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def check_fits(parameters, what, flag):
    """Refuse at once a model whose weights, gradients and optimizer state (about four float32
    copies) exceed this machine's memory."""
    need, have = 16 * parameters, psutil.virtual_memory().total
    if need > have:
        raise LabError(f"{what} would have {parameters:,} parameters, about {need / 2**30:,.0f} GiB with its "
                       f"gradients and optimizer state, more than this machine's {have / 2**30:,.0f} GiB "
                       f"of memory; pass smaller {flag}")
