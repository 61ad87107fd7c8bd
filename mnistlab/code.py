"""What a run's script was: a fingerprint of each of its top-level definitions and of those of
the modules beside it that it imports, so that a run stopped before the script was edited (a
Dropout added to ``build_mlp``) is not resumed by the edited one, and runs whose flags agree but
whose code does not are told apart. Comments and layout are not code: editing them changes
nothing.
"""

import ast
import hashlib
import os
import sys

MODULE_LEVEL = "module-level statements"


def script_file(script):
    """The file of ``script`` as this process loaded it (run, in a pool worker, or imported)."""
    for name in ("__main__", "__mp_main__", script):
        path = getattr(sys.modules.get(name), "__file__", None) or ""
        if os.path.basename(path) == f"{script}.py":
            return path
    return None


def _digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def fingerprint(script):
    """``{"file", "fingerprint", "definitions"}``: digests of each top-level function and class
    of ``script`` (the rest as MODULE_LEVEL) and of the modules beside it that it imports, named
    ``module.definition`` (the autoencoder's classifier is ``mlp_mnist.build_mlp``); None where
    one cannot be read."""
    return of_file(script_file(script))


def of_file(path):
    """``fingerprint`` of the script at ``path`` (None: it cannot be read)."""
    tree = _parsed(path)
    if tree is None:
        return None
    definitions = _definitions(tree)
    for name, other in _imported_beside(tree, os.path.dirname(path)).items():
        theirs = _parsed(other)
        if theirs is None:
            return None
        definitions.update({f"{name}.{definition}": digest for definition, digest in _definitions(theirs).items()})
    whole = _digest("\n".join(f"{name} {digest}" for name, digest in sorted(definitions.items())))
    return {"file": os.path.basename(path), "fingerprint": whole, "definitions": definitions}


def _parsed(path):
    try:
        with open(path, encoding="utf-8") as f:
            return ast.parse(f.read())
    except (TypeError, OSError, SyntaxError, ValueError):
        return None


def _definitions(tree):
    definitions, rest = {}, []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            definitions[node.name] = _digest(ast.dump(node))
        else:
            rest.append(ast.dump(node))
    definitions[MODULE_LEVEL] = _digest("\n".join(rest))
    return definitions


def _imported_beside(tree, folder):
    """{name: file} of the modules ``tree`` imports that sit in ``folder`` (where Python finds
    them first for a script run from there): another lab script, or a student's own module."""
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {name: path for name in sorted(names) if os.path.isfile(path := os.path.join(folder, f"{name}.py"))}


def modules_of(fingerprint):
    """The modules beside the script whose definitions ``fingerprint`` holds (``mlp_mnist``)."""
    return {name.partition(".")[0] for name in fingerprint["definitions"] if "." in name}


def edited(before, now):
    """The definitions added, removed or changed between two fingerprints, but those of a
    module only one of them recorded; [] if one is unknown."""
    if not before or not now:
        return []
    both = modules_of(before) & modules_of(now)
    old, new = (({name: digest for name, digest in side["definitions"].items()
                  if "." not in name or name.partition(".")[0] in both}) for side in (before, now))
    return [name for name in [*new, *(name for name in old if name not in new)] if old.get(name) != new.get(name)]


def changed_since(stopped, now, file):
    """Why work done with the code ``stopped`` (a ``fingerprint``) cannot go on with the code
    ``now`` of the script ``file`` and the modules it imports, or None: an edit, or one that
    cannot be ruled out."""
    if not now:
        return f"the code of {file} cannot be read, so an edit since it stopped cannot be ruled out"
    unrecorded = [f"{name}.py" for name in sorted(modules_of(now) - modules_of(stopped))] if stopped else [file]
    if unrecorded:
        return f"it did not record the code of {' and '.join(unrecorded)}, so an edit since it stopped cannot be ruled out"
    changed = edited(stopped, now)
    if not changed:
        return None
    files = sorted({f"{name.partition('.')[0]}.py" if "." in name else file for name in changed})
    return (f"{' and '.join(files)} {'has' if len(files) == 1 else 'have'} changed since it stopped "
            f"({', '.join(changed)})")
