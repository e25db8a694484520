"""The run plan: configurations x seeds, seed by seed, so that a run cut short still has every row."""

from medcnn.experiment.runs import train_and_evaluate


def seed_order(configurations, seeds_of):
    """[(configuration, seed)] seed by seed: every configuration of seed 0, then of seed 1, ...

    Args:
        configurations: objects with a `group` attribute, in table order.
        seeds_of: {group: [seeds]}; a configuration whose group is missing gets no run.
    """
    every_seed = sorted({seed for configuration in configurations for seed in seeds_of.get(configuration.group, [])})
    return [
        (configuration, seed)
        for seed in every_seed
        for configuration in configurations
        if seed in seeds_of.get(configuration.group, [])
    ]


def group_seeds(groups, seeds):
    """{group: seeds} from a scale's `groups` ({group: its own seeds, or None for the scale's `seeds`})."""
    return {group: seeds if chosen is None else chosen for group, chosen in groups.items()}


def snapshot_pairs(items, snapshots, seeds):
    """[((short label, seed), (long label, seed))] of `items` ({(label, seed): a run or planned run}) where a row of
    `snapshots` ({short label: long label}) and its longer run are both there and the short one has fewer epochs:
    the short one is recorded from the long one's first epochs instead of trained (`Run.snapshots`)."""
    pairs = [((short, seed), (long, seed)) for short, long in snapshots.items() for seed in seeds]
    return [(a, b) for a, b in pairs if a in items and b in items and items[a].epochs < items[b].epochs]


def run_all(runs, x, labels, class_names, cache, verbose=2, log=print):
    """Train (or reuse) every run in order; returns all records, snapshots after their run.

    Args:
        runs: `Run`s in the order to train them (see `seed_order`); a snapshot is listed inside its run only.
        x, labels, class_names: the data, as for `train_and_evaluate`.
        cache: a `RunCache`.
        log: one line per run: what it is, the split sizes, reused or its validation and test accuracy.
    """
    records = []
    for run in runs:
        sizes = "/".join(str(len(index)) for index in run.split.values())
        log(f"--- {run.label} | seed {run.seed} | {'/'.join(run.split)} {sizes}")
        for record in train_and_evaluate(run, x, labels, class_names, cache, verbose, log):
            how = "reused" if record["cached"] else f"trained in {record['train_s']:.0f} s"
            scores = ", ".join(
                f"{side} {record[f'{side}_accuracy']:.3f}" for side in ("val", "test") if f"{side}_accuracy" in record
            )
            log(f"    {record['configuration']} (seed {record['seed']}): {how}; {scores}")
            records.append(record)
    return records


def run_counts(records):
    """How many runs there are, how many were trained now and reused, and the seconds their training took.

    Records without `train_s` (reference rows such as a classical classifier) are not counted.
    """
    records = [record for record in records if "train_s" in record]
    trained = [record for record in records if not record.get("cached")]
    return {
        "runs": len(records),
        "trained_now": len(trained),
        "reused": len(records) - len(trained),
        # snapshots share their run's training: count each training once
        "training_s_now": sum(r["train_s"] for r in trained if "snapshot_of" not in r),
        "training_s_all_runs": sum(r["train_s"] for r in records if "snapshot_of" not in r),
    }


def find_run(runs, record):
    """The `Run` (or snapshot) that produced `record`: same configuration label and seed."""
    for run in runs:
        for item in (run, *run.snapshots):
            if item.label == record["configuration"] and item.seed == record["seed"]:
                return item
    raise KeyError(f"No run '{record['configuration']}' with seed {record['seed']} in this plan.")
