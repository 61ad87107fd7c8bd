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
    path = script_file(script)
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
    """{name: file} of the modules ``tree`` imports (as this process loaded them) that sit in
    ``folder``: another lab script, or a student's own module; not the package's."""
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    found = {}
    for name in sorted(names):
        path = getattr(sys.modules.get(name), "__file__", None) or ""
        if os.path.dirname(path) == folder and path.endswith(".py"):
            found[name] = path
    return found


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
