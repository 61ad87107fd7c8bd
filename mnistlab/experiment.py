"""One supervised run, as every lab script does it: fit with the test set as validation,
evaluate, then write the training curves, the model diagram, the JSON record and the model.

An interrupted fit goes on from its last finished epoch when the same command is rerun: Keras's
BackupAndRestore keeps the weights and optimizer state of each finished epoch in the run's
folder, and the record keeps the history of the same epochs.
"""

import shutil

from mnistlab import plots, results, training


def train_and_report(model, args, train, test, out, *, name, title):
    """Fit ``model`` (compiled) at ``args``' settings; return the record written to NAME.json."""
    json_path = out.record(name)
    backup = out.backup(name)
    record = {"name": name, "config": vars(args), "environment": results.environment()}
    done = training.epochs_backed_up(backup)
    history = results.read_record(json_path).get("history", {}) if done else {}
    if done and history and all(len(values) >= done for values in history.values()):
        record["history"] = {key: values[:done] for key, values in history.items()}  # the backup's epochs
        print(f"Resuming {name} in run {out.name} after epoch {done} of {args.epochs}", flush=True)
    else:  # no backup, or one without the history of its epochs: start this fit afresh
        done = 0
        out.drop_backup(name)
    # Keras refuses to draw its layer table in a terminal narrower than it: then draw it at a
    # fixed width and let the terminal wrap it.
    model.summary(line_length=None if shutil.get_terminal_size().columns >= 60 else 88)
    clock = results.Stopwatch()
    training.fit(model, *train, epochs=args.epochs, batch_size=args.batch_size, validation_data=test,
                 initial_epoch=done,
                 callbacks=[training.SaveProgress(json_path, record), training.backup_and_restore(backup)])
    history = record["history"]
    scores = training.evaluate(model, *test, args.batch_size)
    print("Test " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    record.update(status="complete", history=history, parameters=model.count_params(),
                  wall_seconds=clock.seconds(), diverged_at_epoch=results.diverged_at(history),
                  **{f"test_{k}": v for k, v in scores.items()})

    for metric in ("accuracy", "loss"):
        if metric in history:
            plots.plot_curves(history, metric, out.plot(f"{name}_{metric}.png"),
                              f"{title}: {metric} per epoch")
    plots.plot_model_diagram(model, out.plot(f"{name}_model.png"), title)
    if args.save_model:
        results.save_model(model, out.result(f"{name}.keras"))
    results.write_json(json_path, record)
    out.drop_backup(name)  # the run is past this fit: nothing left to resume
    print(f"Wrote {json_path} and figures under {out.plots}")
    return record
