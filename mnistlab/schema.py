"""The kinds a JSON file's fields may hold, and the check that refuses by name a file whose
fields hold another kind (a record edited by hand, a truncated write).

    read_checked(path, {"epoch": int, "history": MapOf(ListOf(NUMBER))}, required=("epoch",))
"""

from typing import NamedTuple

from mnistlab import files
from mnistlab.errors import LabError

NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))  # None: a number a diverged run has not got
OPTIONAL_INT = (int, type(None))


class ListOf(NamedTuple):
    """A list whose items are each of kind ``item``; ``nonempty``: with at least one."""
    item: object
    nonempty: bool = False


class MapOf(NamedTuple):
    """A dict whose values, under any key, are each of kind ``value``."""
    value: object


class Fields(NamedTuple):
    """A dict whose ``fields`` hold their kinds where present, and which has ``required``."""
    fields: dict
    required: tuple = ()


def every(fields):
    """``Fields`` that must all be there."""
    return Fields(fields, tuple(fields))


def fits(value, kind):
    """Whether ``value`` is of ``kind``: a type or tuple of types, or a ``ListOf``, ``MapOf`` or
    ``Fields``, checked all the way down."""
    if isinstance(kind, ListOf):
        return isinstance(value, list) and bool(value or not kind.nonempty) and all(fits(v, kind.item) for v in value)
    if isinstance(kind, MapOf):
        return isinstance(value, dict) and all(fits(v, kind.value) for v in value.values())
    if isinstance(kind, Fields):
        return (isinstance(value, dict) and all(key in value for key in kind.required)
                and all(fits(value[key], sub) for key, sub in kind.fields.items() if key in value))
    return isinstance(value, kind)


def check_kinds(data, fields, path, what="something", required=()):
    """Refuse by name the file ``path`` whose ``data`` (a dict) holds, in a field of ``fields``
    (present, or ``required``), a value of another kind than the field's, at any depth."""
    if not isinstance(data, dict):
        wrong = ["its form"]
    else:
        wrong = [key for key, kind in fields.items()
                 if (key in data or key in required) and not fits(data.get(key), kind)]
    if wrong:
        raise LabError(f"{path} holds {what} of an unexpected form ({', '.join(wrong)}; edited by hand?); "
                       "move it aside or delete it, then rerun")


def read_checked(path, fields, required=()):
    """A JSON dict whose fields hold what ``fields`` says; {} if there is no file."""
    data = files.read_json(path)
    if data is None:
        return {}
    if required and not (isinstance(data, dict) and all(key in data for key in required)):
        raise LabError(f"{path} lacks {', '.join(required)} (edited by hand?); move it aside or delete it, then rerun")
    check_kinds(data, fields, path)
    return data
