"""Files written in one step and read strictly, into output folders checked writable first: an
interrupted run never leaves a half-written file, and a damaged one is refused by name, never
silently replaced."""

import json
import math
import os
import tempfile

from mnistlab.errors import LabError
from mnistlab.exits import cannot_write


def write_atomic(path, write, what=None):
    """Call ``write(tmp_path)``, then move the finished file into place in one step. A failed
    write leaves the earlier file and no temporary one, and raises a LabError naming the file
    (or ``what``) and the fix."""
    folder, name = os.path.split(path)
    stem, dot, extensions = name.partition(".")
    tmp = os.path.join(folder, f"{stem}.tmp-{os.getpid()}{dot}{extensions}")  # the same extensions: Keras checks them
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise cannot_write(what or f"{name} in {folder or '.'}", exc) from None
    finally:
        if os.path.isfile(tmp):
            os.remove(tmp)


def check_room(folder, nbytes):
    """Raise LabError unless ``nbytes`` more can be written in ``folder`` (a full disk, a quota)."""
    os.makedirs(folder, exist_ok=True)
    probe = os.path.join(folder, f".room-check-{os.getpid()}")

    def fill(tmp):
        with open(tmp, "wb") as f:
            f.write(bytes(nbytes))
    write_atomic(probe, fill, what=f"in {folder}")
    os.remove(probe)


def write_text(path, text):
    def dump(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    write_atomic(path, dump)


def write_json(path, data):
    """``data`` as strict JSON: a number that is not finite (a diverged loss) as null."""
    write_text(path, json.dumps(finite_or_none(data), indent=2, allow_nan=False) + "\n")


def finite_or_none(data):
    """``data`` with every float that is not finite replaced by None, at any depth."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(value) for value in data]
    return data


def read_json(path, default=None):
    """The JSON in ``path``, or ``default`` if there is none; a truncated or hand-edited file is
    refused by name (it may hold hours of finished work)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, parse_constant=_not_json)
    except FileNotFoundError:
        return default
    except (ValueError, UnicodeDecodeError) as exc:
        raise LabError(f"{path} is not valid JSON ({exc.__class__.__name__}: truncated or edited?); "
                       "move it aside or delete it, then rerun") from None
    except IsADirectoryError:
        raise LabError(f"{path} is a folder where a record goes; move it aside, then rerun") from None
    except OSError as exc:
        raise LabError(f"cannot read {path} ({exc.strerror}); check its permissions") from None


def _not_json(token):
    """NaN and Infinity are not JSON (though Python reads them): this project wrote no such record."""
    raise ValueError(f"{token} is not a JSON number")


def save_model(model, path):
    """``model.save`` in one step, as every other result."""
    write_atomic(path, model.save)


class Outputs:
    """A folder's plots/ and results/, checked writable before any training starts."""

    def __init__(self, root):
        self.root = root
        self.plots = os.path.join(root, "plots")
        self.results = os.path.join(root, "results")
        for folder in (self.plots, self.results):
            try:
                os.makedirs(folder, exist_ok=True)
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as exc:
                raise LabError(f"cannot write to {folder} ({exc.strerror}); pass --out to a writable folder")

    def plot(self, name):
        return os.path.join(self.plots, name)

    def result(self, name):
        return os.path.join(self.results, name)
