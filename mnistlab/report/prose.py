"""The report's fixed prose, what holds for any run: the blocks of prose.md, line for line as the
report writes them; the layer notes and figure captions the sections pick from, as ``KEY: text``.
Every number stays with the sections, which compute it from the records."""

import os

with open(os.path.join(os.path.dirname(__file__), "prose.md"), encoding="utf-8") as f:
    BLOCKS = {name: lines for name, *lines in (block.split("\n") for block in f.read()[:-1].split("\n## ")[1:])}
NEW_LAYERS, CNN_FIGURES, GENERATED_FIGURES = (dict(line.split(": ", 1) for line in BLOCKS[name])
                                              for name in ("NEW_LAYERS", "CNN_FIGURES", "GENERATED_FIGURES"))
