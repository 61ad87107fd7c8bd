"""The report's sections for question 4: the denoising autoencoder, its digits at each noise
level, the classifiers' accuracy against the noise, and digits from the decoder alone."""

from mnistlab import lab, noise_study
from mnistlab.report.common import (BLOCKS, GENERATED_FIGURES, Section, caveat, diverged, figure, figures,
                                    layers_table, levels_text, points, table)
from mnistlab.records import percent

NAME = "denoise_autoencoder"
LAB_REPORT_LEVEL = 0.6  # where the lab report judged that denoising stops holding up

def autoencoder(records, dae, out):
    config = dae["config"]
    encoder = [row for row in dae["layers"] if row["layer"].startswith("encoder")]
    pixels, around, code = (row["output_shape"][-1] for row in (dae["layers"][0], encoder[0], encoder[-1]))
    noise = (f"exactly {config['noise']:g}" if config.get("fixed_noise")
             else f"drawn for each image from a band of mean {config['noise']:g}, fresh every epoch")
    lines = layers_table(dae) + [
        f"**The data**{caveat(dae, NAME)}: each training image is flattened to {pixels} pixels "
        f"in [0, 1]; its input is a noisy copy (`salt_and_pepper`: a fraction of the pixels, here "
        f"{noise}, replaced by black or white), its target the clean image itself. "
        f"**The model**: an encoder squeezes the {pixels} pixels through {around} units into a code of {code} "
        f"numbers; a decoder expands the code back to {pixels} pixels, each through a sigmoid, so each output "
        "is a value in (0, 1). As the code is smaller than the image and noise is random, the cheapest "
        "way to reproduce clean digits is to encode what digits look like and drop the rest: the "
        "network learns to denoise.",
        "",
    ] + BLOCKS["BINARY_CROSS_ENTROPY"] + (diverged(dae, NAME) or [
        f"**Trained** with the given settings: Adam at {config['lr']:g}, {config['epochs']} epochs, batch "
        f"{config['batch_size']}. The training loss ended at {dae['history']['loss'][-1]:.4f} and the loss "
        f"on noisy test digits at {dae['history']['val_loss'][-1]:.4f}.", ""])
    lines += figure(out, "denoise_autoencoder_model.png", "The autoencoder: encoder, then decoder, with each "
                                                          "layer's output shape.")
    return lines + figure(out, "denoise_autoencoder_loss.png", "Its binary cross-entropy per epoch.")

def noise_levels(records, dae, out):
    if diverged(dae, NAME):
        return diverged(dae, NAME) + figure(out, "denoise_examples.png", "What the diverged autoencoder makes of the digits.")
    lines = figure(out, "denoise_examples.png", "The same ten test digits clean, noisy and denoised at "
                                                 "each noise level.")
    lines += table(["noise", "#cross-entropy, noisy", "#cross-entropy, denoised", "#PSNR noisy (dB)",
                    "#PSNR denoised (dB)"],
                   [(f"{r['noise_level']:g}", f"{r['bce_noisy']:.3f}", f"{r['bce_denoised']:.3f}",
                     "–" if r["psnr_noisy_db"] is None else f"{r['psnr_noisy_db']:.1f}",
                     "–" if r["psnr_denoised_db"] is None else f"{r['psnr_denoised_db']:.1f}")
                    for r in dae["reconstruction"]])
    if "classifiers" not in dae:
        return lines
    name, levels = next(iter(noise_study.by_level(dae).items()))
    _, kept, stops, helped = noise_study.thresholds(levels)
    readable = noise_study.READABLE
    lines += hard_to_read(dae, name, levels) + [
        f"**Where denoising stops working.** Our rule: denoising helps at a level when the {name}'s "
        f"accuracy on denoised digits beats its accuracy on the noisy ones by more than "
        f"{100 * noise_study.HELPS_BY:g} percentage point "
        "and by more than twice the spread between noise draws. "
        + (f"Denoised digits stay readable (at least {readable:.0%}) up to **noise {kept:g}**" if kept is not None
           else f"Denoised digits fall below {readable:.0%} at every level")
        + (f"; denoising helps from noise {levels_text([l for l, *sc in levels if noise_study.helps(*sc)][:1])} "
           f"and **stops helping at noise {stops:g}**" if stops is not None
           else "; denoising helps up to the highest level tried" if helped else "; denoising never helps here")
        + ". " + at_lab_report_level(levels) + closer(dae["reconstruction"]), ""]
    return lines

def hard_to_read(dae, name, levels):
    """4B: where the reader (an eye that knows the noise) falls below READABLE, beside the classifier."""
    readable, note = noise_study.READABLE, caveat(dae, NAME)
    clean_level, clean_accuracy = noise_study.hard_to_read((level, noisy) for level, noisy, *_ in levels)
    clean_says = (f"**noise {clean_level:g}**{'' if 'reader' in dae else ' in this run' + note} ({percent(clean_accuracy)})"
                  if clean_level is not None else "no level tried in this run")
    if "reader" not in dae:
        return [f"**Where digits get hard to read.** Reading a figure by eye is a judgement; as a measurable "
                f"stand-in we take the {name}, which reads clean digits at "
                f"{percent(dae['classifiers'][0]['accuracy_clean'])}, and call noisy digits hard to read from the first "
                f"level where its accuracy on them falls below {readable:.0%}: {clean_says}. "
                "Compare with the noisy rows of the figure.", ""]
    reader = dae["reader"]
    level, accuracy = noise_study.hard_to_read(zip(dae["noise_levels"], reader["accuracy_noisy"]))
    reads = (f"**noise {level:g}** in this run{note} ({percent(accuracy)})" if level is not None
             else "no level tried in this run")
    return [f"**Where digits get hard to read.** Reading a figure by eye is a judgement. Our stand-in for an eye "
            f"that knows what salt-and-pepper noise looks like is the {reader['name']} (a fresh level from 0 to 1 "
            f"for each digit, every epoch), which reads clean digits at {percent(reader['accuracy_clean'])}; we call "
            f"noisy digits hard to read from the first level where its accuracy on them falls below "
            f"{readable:.0%}: {reads}. The {name}, trained on clean digits only, measures something else, how far "
            f"noise it has never seen confuses it: it falls below {readable:.0%} from {clean_says}. "
            "Compare both with the noisy rows of the figure.", "",
            *table(["noise", f"#{reader['name']}", f"#{name} (clean digits only)"],
                   [(f"{lv:g}", f"{percent(r)} ± {100 * r_std:.2f}", f"{percent(c)} ± {100 * c_std:.2f}")
                    for lv, r, r_std, (_, c, c_std, *_) in zip(dae["noise_levels"], reader["accuracy_noisy"],
                                                               reader["accuracy_noisy_std"], levels)])]

def at_lab_report_level(levels):
    """This run's numbers where the lab report judged that denoising stops holding up."""
    judged = f"The lab report judged that denoising holds up to about {LAB_REPORT_LEVEL:g}"
    at = next(((noisy, denoised) for level, noisy, _, denoised, _ in levels if level == LAB_REPORT_LEVEL), None)
    if at is None:
        return f"({judged}.) "
    return f"{judged}; here, at {LAB_REPORT_LEVEL:g}, denoised digits are read at {percent(at[1])} against {percent(at[0])} noisy. "

def closer(reconstruction):
    """Where the denoised images are closer to the clean ones than the noisy images are."""
    better = [r["noise_level"] for r in reconstruction if r["bce_denoised"] < r["bce_noisy"]]
    if not better:
        return "By cross-entropy against the clean digits, the denoised images are never closer to them than the noisy ones."
    return (f"By cross-entropy against the clean digits (and by PSNR, the peak signal-to-noise ratio: "
            f"higher is closer), the denoised images are closer to them than the noisy ones at noise "
            f"{levels_text(better)}"
            + (f", and further from them at {levels_text(r['noise_level'] for r in reconstruction if r['noise_level'] not in better)}"
               if len(better) < len(reconstruction) else "") + ".")

def accuracy_against_noise(records, dae, out):
    if diverged(dae, NAME):
        return diverged(dae, NAME)
    curves = noise_study.by_level(dae)
    names = list(curves)
    lines = [f"Scored{caveat(dae, NAME)} with {' and '.join(names)} ({names[0]}: the best "
              f"model of questions 2-3 this folder saved), on {dae['study_mode']}; each point the mean over "
              f"{dae['draws']} noise draws, the correct class taken as the most likely one (accuracy = "
              "true-positive rate).", ""]
    lines += figure(out, "denoise_accuracy.png", "Accuracy on noisy (dashed) and denoised (solid) test digits "
                                                 "against the noise level, and on clean digits (dotted).")
    header = ["noise"] + [f"#{name}, {kind}" for name in names for kind in ("noisy", "denoised")]
    rows = []
    for i, level in enumerate(dae["noise_levels"]):
        row = [f"{level:g}"]
        for name in names:
            _, noisy, noisy_std, denoised, denoised_std = curves[name][i]
            mark = "**" if noise_study.helps(noisy, noisy_std, denoised, denoised_std) else ""
            row += [f"{percent(noisy)} ± {100 * noisy_std:.2f}", f"{mark}{percent(denoised)} ± {100 * denoised_std:.2f}{mark}"]
        rows.append(row)
    lines += table(header, rows)
    lines += ["In bold: where denoising helps by the rule of 4B.", ""]
    for name, levels in curves.items():
        clean = next(c["accuracy_clean"] for c in dae["classifiers"] if c["name"] == name)
        gain, at = max((denoised - noisy, level) for level, noisy, _, denoised, _ in levels)
        helped = [level for level, *scores in levels if noise_study.helps(*scores)]
        zero = next((denoised for level, _, _, denoised, _ in levels if level == 0), None)
        text = (f"- **{name}** (clean {percent(clean)}): denoising helps at noise {levels_text(helped)}, most at "
                f"{at:g} ({points(gain)})" if helped else
                f"- **{name}** (clean {percent(clean)}): denoising helps at no level tried (at best {points(gain)}, "
                f"at {at:g})")
        if zero is not None:
            text += (f"; at noise 0 the autoencoder costs it {100 * (clean - zero):.2f} points, the price of "
                     "passing clean digits through a denoiser" if zero < clean else "; at noise 0 it costs nothing")
        lines.append(text + ".")
    if len(names) > 1:
        lines += two_classifiers(curves, names, len(dae["noise_levels"]))
    return lines + BLOCKS["DENOISING_DISCUSSION"]

def two_classifiers(curves, names, count):
    """How the first two classifiers compare, on noisy digits and after denoising."""
    both = [(curves[names[0]][i], curves[names[1]][i]) for i in range(count)]
    noisy_gap = sum(a[1] - b[1] for a, b in both) / len(both)
    denoised_gap = sum(a[3] - b[3] for a, b in both) / len(both)
    behind = [level for (level, a_noisy, *_), (_, b_noisy, *_) in both if a_noisy < b_noisy - noise_study.HELPS_BY]
    return [f"- **The two together**: on noisy digits the {names[0]} leads the {names[1]} by "
            f"{100 * noisy_gap:.2f} points on average over the levels"
            + (f", yet falls behind it at noise {levels_text(behind)} (plausibly because its filters, learned "
               "on clean strokes, also fire on the noise's specks)" if behind else "")
            + f"; after denoising it leads by {100 * denoised_gap:.2f}. "
            + ("Denoising narrows the gap: once the noise is removed, what is left to classify is a clean-"
               "looking digit, which both read well." if abs(denoised_gap) < abs(noisy_gap) else
               "Denoising does not narrow the gap.")]

AUTOENCODER = Section("4A", "What the denoising autoencoder does, and its loss", "Explain what the model does",
                      autoencoder, NAME, "layers config history/loss history/val_loss", "python denoise_autoencoder.py")
NOISE_LEVELS = Section("4B", "Noisy and denoised digits from noise 0 to 1",
                       "At what noise level does it become difficult to identify the digits for you?",
                       noise_levels, NAME, "reconstruction", "python denoise_autoencoder.py")
ACCURACY = Section("4C", "Does denoising help the classifiers?",
                   "Test whether denoising improves the classification with the best performing model you obtained "
                   "in questions 2 or 3.", accuracy_against_noise, NAME, "classifiers noise_levels draws study_mode",
                   f"python denoise_autoencoder.py {' '.join(lab.LAB_FLAGS[NAME])}")
GENERATING = Section("4D", "Generating digits with the decoder alone",
                     "Explain how you can use the decoder part of the denoising auto-encoder to generate synthetic "
                     "'hand-written' digits?", lambda records, dae, out: BLOCKS["GENERATING"]
                     + figures(out, GENERATED_FIGURES), NAME, "", "python denoise_autoencoder.py")
SECTIONS = (AUTOENCODER, NOISE_LEVELS, ACCURACY, GENERATING)
