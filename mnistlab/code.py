"""What a run's script was: a fingerprint of each of its top-level definitions, so that a run
stopped before the script was edited (a Dropout added to ``build_mlp``) is not resumed by the
edited one, and runs whose flags agree but whose code does not are told apart. Comments and
layout are not code: editing them changes nothing.
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
    """``{"file", "fingerprint", "definitions"}``: digests of ``script`` and of each top-level
    function and class (the rest as MODULE_LEVEL); None where it cannot be read."""
    path = script_file(script)
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (TypeError, OSError, SyntaxError, ValueError):
        return None
    definitions, rest = {}, []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            definitions[node.name] = _digest(ast.dump(node))
        else:
            rest.append(ast.dump(node))
    definitions[MODULE_LEVEL] = _digest("\n".join(rest))
    whole = _digest("\n".join(f"{name} {digest}" for name, digest in sorted(definitions.items())))
    return {"file": os.path.basename(path), "fingerprint": whole, "definitions": definitions}


def edited(before, now):
    """The definitions added, removed or changed between two fingerprints; [] if one is unknown."""
    if not before or not now:
        return []
    old, new = before["definitions"], now["definitions"]
    return [name for name in [*new, *(name for name in old if name not in new)] if old.get(name) != new.get(name)]
