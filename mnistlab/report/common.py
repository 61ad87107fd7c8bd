"""What every section of the report uses: the folder's records, and Markdown made from them
(headings, tables, figures, the caveat beside numbers not made at the lab's settings)."""

import os
from typing import Callable, NamedTuple, Optional, Union

from mnistlab import data, l2_study, lab, records, runs
from mnistlab.records import diverged_at

# The fixed prose, true of any run: prose.md's blocks, line for line; the notes and captions as ``KEY: text``.
with open(os.path.join(os.path.dirname(__file__), "prose.md"), encoding="utf-8") as f:
    BLOCKS = {name: lines for name, *lines in (block.split("\n") for block in f.read()[:-1].split("\n## ")[1:])}
NEW_LAYERS, CNN_FIGURES, GENERATED_FIGURES = (dict(line.split(": ", 1) for line in BLOCKS[name])
                                              for name in ("NEW_LAYERS", "CNN_FIGURES", "GENERATED_FIGURES"))

def read_records(out):
    """Each record in OUT/results ({} if missing), the runs' run.json ("runs"), the Hinton experiment's."""
    read = lambda name, fields=records.RECORD_FIELDS: records.read(os.path.join(out, "results", f"{name}.json"), fields)
    found = {name: read(name) for facts in lab.SCRIPTS.values() for name in facts["records"]}
    found["runs"] = {name: read(f"{name}_run", records.RUN_FIELDS) for facts in lab.SCRIPTS.values()
                     for name in facts["records"]}
    hinton = os.path.join(out, HINTON_EXPERIMENT, "results", f"{l2_study.NAME}_runs.json")
    found["hinton"] = records.read(hinton, runs.RUNS_SUMMARY, required=("runs",))
    return found

HINTON_EXPERIMENT = os.path.join("experiments", "hinton")  # the pre-declared arms of experiments/hinton/README.md

def caveat(record, name, flags_only=False):
    """What sets record ``name``'s numbers apart from the lab's: a quick subset, other flags,
    another backend (``flags_only``: the flags); "" for a record made at the lab's settings."""
    config = record.get("config", {})
    notes = []
    if config.get("quick") and not flags_only:
        notes.append("quick subset")
    flags = [flag for flag in config.get("changed", [])
             if flag != "quick" and flag.split(" ")[0] not in lab.CHOICE_FLAGS]
    if flags:
        notes.append("flags: " + ", ".join(flags))
    backend = record.get("environment", {}).get("backend")
    if backend and not flags_only and backend not in (facts["backend"] for facts in lab.SCRIPTS.values() if name in facts["records"]):
        notes.append(f"backend {backend}")
    return f" *({'; '.join(notes)})*" if notes else ""

def diverged(record, name):
    """A paragraph for a fit whose loss stopped being a number, or [] for one that did not."""
    epoch = diverged_at(record.get("history", {}))
    if epoch is None:
        return []
    return [f"**This run diverged**{caveat(record, name)}: its training loss stopped being a number in epoch {epoch}, "
            "so the training stopped there and its numbers answer nothing; rerun with a smaller `--lr`.", ""]

def points(difference):
    return f"{100 * difference:+.2f} points"

def levels_text(levels):
    return ", ".join(f"{level:g}" for level in levels)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

def figure(out, name, caption):
    """A figure of plots/ with its caption; nothing if not drawn; a note if it is not a PNG."""
    path = os.path.join(out, "plots", name)
    if not os.path.lexists(path):
        return []
    try:
        with open(path, "rb") as f:
            readable = f.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
    except OSError:
        readable = False
    if not readable:
        return [f"*(The figure plots/{name} is not a readable PNG: move it aside and rerun the command "
                "that made this part to draw it again.)*", ""]
    return [f"![{caption}](plots/{name})", "", f"*{caption}*", ""]

def figures(out, captions):
    """``figure`` for each {name: caption} of ``captions``."""
    return [line for name, caption in captions.items() for line in figure(out, name, caption)]

def table(header, rows):
    """A Markdown table; a header starting with # is a column of numbers, aligned right."""
    lines = ["| " + " | ".join(h.lstrip("#") for h in header) + " |",
             "|" + "|".join("---:" if h.startswith("#") else "---" for h in header) + "|"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows] + [""]

def shape(output_shape):
    return "×".join(str(d) for d in output_shape[1:])

def layers_table(record):
    """The table of a record's layers (layer, output shape, parameters) and their total."""
    rows = [(row["layer"], shape(row["output_shape"]), f"{row['parameters']:,}") for row in record["layers"]]
    return table(["layer", "output shape", "#parameters"], rows + [("**total**", "", f"**{record['parameters']:,}**")])

class Section(NamedTuple):
    """Answered by ``body(records, record, out)`` once records[``name``] holds ``field``, else ``command``."""
    number: str
    words: Union[str, Callable]
    quote: str
    body: Callable
    name: Optional[str] = None
    field: str = ""
    command: str = ""

def holds(record, path):
    """Whether ``record`` has the field at ``path`` ("history/val_accuracy")."""
    for key in path.split("/"):
        if not isinstance(record, dict) or key not in record:
            return False
        record = record[key]
    return True

def write(section, records, out):
    """The section's heading, then its answer, or the command that makes its record."""
    record = records[section.name] if section.name else None
    ready = not section.name or (record and all(holds(record, path) for path in section.field.split()))
    words = section.words if isinstance(section.words, str) else section.words(record if ready else None)
    lines = [f"## {section.number}. {words}", "", f"> The handout: \"{section.quote}\"", ""]
    if not ready:
        return lines + [f"*Not in this folder's records yet: `{section.command}` makes them.*", ""]
    return lines + section.body(records, record, out)

def test_count(record):  # the test digits a record was scored on
    return record.get("examples", {}).get("test", 10_000)

def provenance(records):
    """The banner: where the numbers come from, and how they differ from the lab's settings."""
    lines = []
    made = {name: records[name] for facts in lab.SCRIPTS.values() for name in facts["records"] if records[name]}
    if any(record.get("config", {}).get("quick") for record in made.values()):
        train, test = data.QUICK_SIZES
        lines += [f"> **A quick run.** These records come from `--quick` runs: {train:,} training and "
                  f"{test:,} test digits and 1-2 epochs. They show that every part works; their numbers "
                  "do not answer the lab and are not comparable with its references. `make lab` makes "
                  "the lab's numbers.", ""]
    others = [f"`{name}` {caveat(record, name).strip(' *()')}" for name, record in made.items()
              if caveat(record, name) and not record.get("config", {}).get("quick")]
    if others:
        lines += ["> **Settings that differ from the lab's**: " + "; ".join(others)
                  + ". Numbers marked so below come from them.", ""]
    return lines + machines(records)

def machines(records):
    """The machine and versions the records were made with, or each of them, with its records."""
    made = {}
    for facts in lab.SCRIPTS.values():
        for name in facts["records"]:
            env = records[name].get("environment")
            if env:
                text = (f"{env['cpu']}, {env['cores']} cores. Python {env['python']}, TensorFlow "
                        f"{env['tensorflow']}, Keras {env['keras']}, JAX {env.get('jax', '–')}")
                made.setdefault(text, []).append(name)
    if len(made) <= 1:
        return [f"Machine: {text}.", ""] if made else []
    return ["Machines:", ""] + [f"- {text} (`{'`, `'.join(names)}`)" for text, names in made.items()] + [""]

def wall_times(records):
    """Each part's wall time and backend with its run's flags, the total (once each), the improved CNN's."""
    def rows(names):
        found = []
        for name in names:
            meta, record = records["runs"][name], records[name]
            backend = (record.get("environment") or record.get("settings", {})).get("backend", "–")
            for part_name, part in meta.get("parts", {}).items():
                if (part["records"] or meta["records"])[0] == name:  # a part without records: its run's first
                    beside = f" (beside the {part['within']}, within their time)" if "within" in part else ""
                    found.append((f"`{meta['script']}.py`: {part_name}{beside}{caveat(record, name, flags_only=True)}",
                                  backend, part["wall_seconds"], not beside))
        return found
    lab_rows = rows(name for facts in lab.SCRIPTS.values() for name in facts["records"] if name != "cnn_improved")
    beyond = rows(["cnn_improved"])
    if not lab_rows + beyond:
        return []
    cells = [(name, backend, f"{seconds:,.0f}") for name, backend, seconds, _ in lab_rows]
    total = sum(seconds for *_, seconds, counted in lab_rows if counted)
    cells.append(("**the lab's parts**", "", f"**{total:,.0f}**"))
    cells += [(f"{name} (`make improved`, beyond the lab)", backend, f"{seconds:,.0f}") for name, backend, seconds, _ in beyond]
    return ["## Wall time", ""] + table(["part", "backend", "#seconds"], cells)
