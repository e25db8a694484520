"""Published tables beside ours, the run's description, and the files every reproduction writes.

By job: `published` (the papers' tables as DataFrames), `compare` (paper vs ours), `environment` (hardware,
versions, what the run was), `files` (results.json, report.md). Everything is re-exported here, so a notebook
writes `from medcnn import report` and `report.paper_vs_ours(...)`.
"""

from medcnn.report.compare import RUN_COLUMNS, paper_vs_ours, to_wide
from medcnn.report.environment import describe_hardware, run_info, run_summary, software_versions
from medcnn.report.files import (
    REPORT_FILE,
    RESULTS_FILE,
    file_list_hash,
    markdown_table,
    results_dir,
    to_jsonable,
    write_report,
    write_results,
)
from medcnn.report.published import as_percent, paper_table, table_from_metrics

__all__ = [
    "RUN_COLUMNS",
    "REPORT_FILE",
    "RESULTS_FILE",
    "as_percent",
    "describe_hardware",
    "file_list_hash",
    "markdown_table",
    "paper_table",
    "paper_vs_ours",
    "results_dir",
    "run_info",
    "run_summary",
    "software_versions",
    "table_from_metrics",
    "to_jsonable",
    "to_wide",
    "write_report",
    "write_results",
]
