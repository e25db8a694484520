"""The experiment layer every study notebook shares: runs, their record cache, the plan, summaries, export, outputs.

A study module turns its configurations into `Run`s, each carrying its whole spec: the study's settings for the
scale, the data digest, the configuration, the model builder and the rest of what it trains with. A run's
fingerprint hashes all of that (less `NON_RESULT_SETTINGS`, which only choose which runs exist and where they go),
so a recorded run is reused only when nothing that changes its result has changed. A notebook then calls a handful
of functions:

    records = experiment.run_all(runs, x, labels, class_names, experiment.RunCache(out_dir, reuse=REUSE_RUNS))
    summary = experiment.summarise(records, metrics)
    table = experiment.compare(paper_table, summary, info)
    model = experiment.trained_model(best, x, labels, class_names, cache)  # saved weights, or the run again
    experiment.export_run(best, x, labels, class_names, cache, out_dir / "model.keras", input_max=1.0)
    experiment.write_outputs(out_dir, experiment.results_payload(...), title, sections, figures)
"""

from medcnn.experiment.cache import NON_RESULT_SETTINGS, RunCache, callable_identity, fingerprint, split_digests
from medcnn.experiment.estimate import RATES, PlannedRun, Rate, estimate_runs, plan_table, plan_text, rate_for
from medcnn.experiment.export import export_model, export_run, serving_model, trained_model
from medcnn.experiment.outputs import (
    compare,
    comparison_markdown,
    data_label,
    reference_payload,
    readme_findings,
    readme_section,
    scale_title,
    readme_table,
    results_payload,
    collapsed_cells,
    reference_cells,
    rows_table,
    summary_cells,
    update_readme,
    write_outputs,
)
from medcnn.experiment.plan import find_run, group_seeds, run_all, run_counts, seed_order
from medcnn.experiment.runs import Run, evaluate_sides, slugify, train_and_evaluate
from medcnn.experiment.seeding import SEED_PARTS, backbone_parts, for_models, seed_policy
from medcnn.experiment.session import Session, repository_root
from medcnn.experiment.summary import (
    best_run,
    majority_share,
    mean_std,
    sample_predictions,
    stuck_runs,
    stuck_statement,
    summarise,
    test_predictions,
)
from medcnn.experiment.truth import (
    REFERENCE_ROWS,
    Verdict,
    compare_means,
    compare_rows,
    is_collapsed,
    metric_kind,
    reaches_paper,
    reference_metrics,
    references,
)

__all__ = [
    "Session",
    "repository_root",
    "REFERENCE_ROWS",
    "Verdict",
    "compare_means",
    "compare_rows",
    "is_collapsed",
    "metric_kind",
    "reaches_paper",
    "reference_metrics",
    "reference_payload",
    "references",
    "NON_RESULT_SETTINGS",
    "SEED_PARTS",
    "PlannedRun",
    "RATES",
    "Rate",
    "estimate_runs",
    "plan_table",
    "plan_text",
    "rate_for",
    "Run",
    "RunCache",
    "best_run",
    "callable_identity",
    "compare",
    "comparison_markdown",
    "data_label",
    "evaluate_sides",
    "export_model",
    "export_run",
    "find_run",
    "group_seeds",
    "fingerprint",
    "backbone_parts",
    "for_models",
    "majority_share",
    "mean_std",
    "readme_findings",
    "readme_section",
    "scale_title",
    "readme_table",
    "results_payload",
    "rows_table",
    "collapsed_cells",
    "reference_cells",
    "summary_cells",
    "run_all",
    "sample_predictions",
    "run_counts",
    "seed_order",
    "seed_policy",
    "serving_model",
    "slugify",
    "split_digests",
    "stuck_runs",
    "stuck_statement",
    "summarise",
    "test_predictions",
    "train_and_evaluate",
    "trained_model",
    "update_readme",
    "write_outputs",
]

# The frozen-features workflow (`medcnn.experiment.features`) and runs that carry their own inputs (`Run.inputs`).
from medcnn.experiment.features import (  # noqa: E402
    Features,
    FeatureSpec,
    export_head,
    extract,
    feature_inputs,
    image_model,
    standardised_head,
    view_rows,
)
from medcnn.experiment.runs import LazyInputs, array_digest, run_data  # noqa: E402

__all__ += [
    "FeatureSpec",
    "Features",
    "LazyInputs",
    "array_digest",
    "export_head",
    "extract",
    "feature_inputs",
    "image_model",
    "run_data",
    "standardised_head",
    "view_rows",
]
