"""The report's sections for question 3: the CNN, how good it gets, and why convolutions suit
images better than dense layers."""

import math

from mnistlab import lab
from mnistlab.report.common import (BLOCKS, CNN_FIGURES, NEW_LAYERS, Section, caveat, figure, figures, layers_table,
                                    shape, test_count)
from mnistlab.records import percent

def errors(record):
    """The test digits a record's model got wrong."""
    return round((1 - record["test_accuracy"]) * test_count(record))

def cnn_model(records, cnn, out):
    mlp = records["mlp_mnist"]
    accuracy = cnn["test_accuracy"]
    sizes = [f"{row['output_shape'][1]}×{row['output_shape'][2]}" for row in cnn["layers"]
             if row["kind"] in ("InputLayer", "Conv2D", "MaxPooling2D")]
    lines = layers_table(cnn)
    config = cnn["config"]
    lines += [
        f"The lab CNN{caveat(cnn, 'cnn_mnist')} reached **{percent(accuracy)}** test accuracy "
        f"({'above' if accuracy >= lab.TARGET_CNN else 'below'} the handout's {lab.TARGET_CNN:.0%}; the lab "
        f"report's CNN: {percent(lab.LAB_REPORT_CNN)}), trained {config['epochs']} epochs with "
        f"{config['optimizer'].capitalize()} at {config['lr']:g}"
        + (", the rate cosine-decayed to 0" if config.get("schedule") == "cosine" else "")
        + f", batch {config['batch_size']}. It misclassifies {errors(cnn)} of the {test_count(cnn):,} test digits"
        + (f", against the lab MLP's {errors(mlp)} with {mlp['parameters']:,} parameters to its "
           f"{cnn['parameters']:,}" if mlp.get("test_accuracy") else "")
        + ".", ""]
    per_class = cnn.get("per_class_accuracy") or []
    present = [d for d, accuracy in enumerate(per_class) if accuracy is not None]
    if present:
        worst, best = min(present, key=per_class.__getitem__), max(present, key=per_class.__getitem__)
        absent = [str(d) for d in range(len(per_class)) if d not in present]
        lines += [f"Per digit, it is weakest on {worst}s ({percent(per_class[worst])} right) and strongest on "
                  f"{best}s ({percent(per_class[best])}); the confusion matrix shows which digits it takes for which."
                  + (f" The test set holds no {', no '.join(absent)}." if absent else ""), ""]
    lines += ["**The layers not used before**:", "", *BLOCKS["CONVOLUTION"],
              f"- `MaxPooling2D` 2×2: keeps the largest value of each 2×2 block, halving each map's height and "
              f"width. In this run the maps go {' → '.join(sizes)} pixels (each unpadded 5×5 convolution trims "
              "4, each pooling halves): a detector that fires anywhere in a block still counts, so a stroke "
              "shifted by a pixel changes little, and the next layer sees a wider part of the digit for the "
              "same filter size.",
              "- `Flatten`, `Dense` with softmax: as in the MLP, on the last maps instead of the pixels.", ""]
    lines += figures(out, CNN_FIGURES)
    return lines + improved_cnn(records["cnn_improved"], cnn, out)

def improved_cnn(improved, cnn, out):
    """Beyond the lab: the improved CNN's accuracy and the layers it adds to the lab CNN's."""
    if improved.get("test_accuracy") is None:
        return []
    lines = [
        f"**Beyond the lab** (`make improved`){caveat(improved, 'cnn_improved')}: the improved CNN reached "
        f"{percent(improved['test_accuracy'])} with {improved['parameters']:,} parameters, "
        f"{errors(improved)} errors. The layers it adds:", ""]
    lab_kinds = {row["kind"] for row in cnn["layers"]}
    for row in improved.get("layers", []):
        if row["kind"] in NEW_LAYERS and row["kind"] not in lab_kinds:
            lab_kinds.add(row["kind"])
            lines.append(f"- `{row['layer']}`: {NEW_LAYERS[row['kind']]}")
    lines.append("")
    return lines + figure(out, "cnn_improved_feature_maps.png", "The improved CNN's feature maps, after each "
                                                                "convolution's batch norm and ReLU.")

def cnn_versus_dense(records, _, out):
    cnn, mlp = records["cnn_mnist"], records["mlp_mnist"]
    lines = list(BLOCKS["CONVOLUTIONS_SUIT_IMAGES"])
    first = next((row for row in cnn.get("layers", []) if row["kind"] == "Conv2D"), None)
    if first and mlp.get("test_accuracy") is not None:
        outputs = math.prod(first["output_shape"][1:])
        pixels = math.prod(mlp["layers"][0]["output_shape"][1:])
        dense_equivalent = pixels * outputs + outputs
        wrong = [errors(mlp), errors(cnn)]
        lines += [
            f"**In numbers, from this run's records**: the first convolution computes {outputs:,} outputs "
            f"({shape(first['output_shape'])}) with {first['parameters']:,} parameters; a dense layer "
            f"computing as many outputs from the {pixels} pixels would need {dense_equivalent:,}. The whole CNN "
            f"has {cnn['parameters']:,} parameters to the MLP's {mlp['parameters']:,} and makes "
            f"{wrong[1]} errors on the test set to the MLP's {wrong[0]}"
            + (f", {wrong[0] / max(wrong[1], 1):.1f} times fewer" if wrong[1] < wrong[0] else "")
            + f"{caveat(cnn, 'cnn_mnist') or caveat(mlp, 'mlp_mnist')}. The price: a convolution does "
            "many more multiplications per parameter (each filter is applied at every position), so "
            "an epoch costs more computation than the MLP's.", ""]
    return lines

SECTIONS = (
    Section("3A", "A convolutional network, and how good it gets",
            "Design a model that makes use of at least one convolutional layer",
            cnn_model, "cnn_mnist", "layers test_accuracy config", f"python cnn_mnist.py {' '.join(lab.LAB_FLAGS['cnn_mnist'])}"),
    Section("3B", "Why convolutions suit images better than dense layers",
            "Discuss the differences and potential benefits of using convolutional layers over fully connected "
            "ones for the particular application?", cnn_versus_dense))
