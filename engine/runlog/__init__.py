"""The run log: one SQLite file (`runs.db`) holding every run, metric, checkpoint, evaluation,
prediction and validation finding. This package is the only code that writes it.

WAL mode lets a training process write while the TUI and the CLI read. The schema is versioned
with `PRAGMA user_version`; `connect` creates and migrates it, `connect_readonly` opens an existing
run log for reading only (never creating, migrating or writing it).

Reads are pure: `get_run` and `list_runs` show a `running` run whose process is gone as
`interrupted` without writing it; `reap_interrupted` (called by writers) records that.

The package: `schema` (tables, migrations, connections), `liveness` (is a run's process
alive), `writes` (the only writer), `reads` (pure reads and the panes' named reads). Callers use
`from engine import runlog` and the names below.
"""

from engine.runlog.liveness import (  # noqa: F401
    process_start_time,
    run_process_alive,
)
from engine.runlog.reads import (  # noqa: F401
    best_checkpoint,
    checkpoint,
    checkpoints,
    completed_validate_run_ids,
    evaluation,
    evaluation_report,
    evaluations_by_run,
    get_run,
    list_runs,
    metrics,
    prediction_rows,
    run_row,
    runs_with_figures,
    validation_counts,
    validation_files,
    validation_findings,
)
from engine.runlog.schema import (  # noqa: F401
    DEFAULT_DB,
    MIGRATIONS,
    RESUMABLE,
    RUN_KINDS,
    RUN_STATUSES,
    SCHEMA_VERSION,
    STALE_AFTER_S,
    RunLogError,
    close,
    connect,
    connect_readonly,
    db_file,
    describe_error,
    is_busy,
    migrate,
    schema_version,
)
from engine.runlog.writes import (  # noqa: F401
    add_checkpoint,
    claim_run,
    create_run,
    delete_checkpoint,
    delete_metrics_after,
    delete_run,
    finish_run,
    heartbeat,
    insert_rows,
    log_metrics,
    reap_interrupted,
    set_best_checkpoint,
    set_run_process,
    store_evaluation,
    update_run,
    upsert_dataset,
)
