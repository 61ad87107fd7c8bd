"""One supervised fit, as every lab script does it: fit with the test set as validation,
evaluate, then write the training curves, the model diagram, the JSON record and the model.

A stopped fit goes on from its last finished epoch when the same command is rerun: the run
keeps a Keras backup of each finished epoch, and the record keeps the history of the same epochs.
"""

import shutil

from mnistlab import plots, results, training


def train_and_report(run, model, train, test, *, name, title, epochs, batch_size, config, save_model=False):
    """Fit ``model`` (compiled) for ``epochs``; write the record ``name`` in ``run`` and return it."""
    done, before = run.resume_point(name, epochs)
    record = {"name": name, "config": config, "environment": results.environment()}
    if done >= epochs:  # no epoch left to train, so no fit whose backup callback would restore it
        training.restore(model, run.backup(name))

    def save(history):
        run.write_record(name, {**record, "status": f"running: {len(history)} epochs done", "history": history})

    # Keras refuses to draw its layer table in a terminal narrower than it: then draw it at a
    # fixed width and let the terminal wrap it.
    model.summary(line_length=None if shutil.get_terminal_size().columns >= 60 else 88)
    clock = results.Stopwatch()
    new = training.fit(model, *train, epochs=epochs, batch_size=batch_size, validation_data=test,
                       initial_epoch=done,
                       callbacks=[training.SaveProgress(save, before), training.BackupAndRestore(run.backup(name))])
    history = {key: before.get(key, []) + new.get(key, []) for key in {**before, **new}}
    scores = training.evaluate(model, *test, batch_size)
    print("Test " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))

    loss = model.loss if isinstance(model.loss, str) else type(model.loss).__name__
    for metric, words in (("accuracy", "accuracy"), ("loss", plots.LOSS_NAMES.get(loss, "loss"))):
        if metric in history:
            plots.plot_curves(history, metric, run.plot(f"{name}_{metric}.png"), f"{title}: {words} per epoch", loss)
    plots.plot_model_diagram(model, run.plot(f"{name}_model.png"), title)
    if save_model:
        results.save_model(model, run.result(f"{name}.keras"))
    record = run.write_record(name, {**record, "status": "complete", "history": history, "loss": loss,
                                     "examples": {"train": len(train[1]), "test": len(test[1])},
                                     "layers": plots.layer_table(model),
                                     "parameters": model.count_params(), "wall_seconds": clock.seconds(),
                                     "diverged_at_epoch": results.diverged_at(history),
                                     **{f"test_{k}": v for k, v in scores.items()}})
    print(f"Wrote {run.result(name + '.json')} and figures under {run.plots}")
    return record
