"""One supervised run, as every lab script does it: fit with the test set as validation,
evaluate, then write the training curves, the model diagram, the JSON record and the model."""

from mnistlab import plots, results, training


def train_and_report(model, args, train, test, out, *, name, title):
    """Fit ``model`` (compiled) at ``args``' settings; return the record written to results/NAME.json.

    The JSON is rewritten after every epoch, so an interrupted run keeps its history.
    """
    json_path = out.result(f"{name}.json")
    record = {"name": name, "config": vars(args), "environment": results.environment()}
    model.summary()
    clock = results.Stopwatch()
    history = training.fit(model, *train, epochs=args.epochs, batch_size=args.batch_size,
                           validation_data=test,
                           callbacks=[training.SaveProgress(json_path, record)])
    scores = training.evaluate(model, *test, args.batch_size)
    print("Test " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    record.update(status="complete", history=history, parameters=model.count_params(),
                  wall_seconds=clock.seconds(), **{f"test_{k}": v for k, v in scores.items()})

    for metric in ("accuracy", "loss"):
        if metric in history:
            plots.plot_curves(history, metric, out.plot(f"{name}_{metric}.png"),
                              f"{title}: {metric} per epoch")
    plots.plot_model_diagram(model, out.plot(f"{name}_model.png"), title)
    if args.save_model:
        model.save(out.result(f"{name}.keras"))
    results.write_json(json_path, record)
    print(f"Wrote {json_path} and figures under {out.plots}")
    return record
