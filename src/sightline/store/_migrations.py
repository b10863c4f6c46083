"""Versioned schema migrations, applied in order at start; never edit a released one."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE projects (
            id VARCHAR PRIMARY KEY,
            created_at TIMESTAMP NOT NULL
        )""",
            """CREATE TABLE api_keys (
            key_hash VARCHAR PRIMARY KEY,
            prefix VARCHAR NOT NULL,
            project_id VARCHAR NOT NULL,
            role VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            last_used_at TIMESTAMP,
            revoked_at TIMESTAMP
        )""",
            """CREATE TABLE spans (
            project_id VARCHAR NOT NULL,
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR NOT NULL,
            parent_span_id VARCHAR,
            name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            start_time TIMESTAMP NOT NULL,
            end_time TIMESTAMP NOT NULL,
            duration_ms DOUBLE NOT NULL,
            status VARCHAR NOT NULL,
            status_message VARCHAR,
            service_name VARCHAR,
            service_version VARCHAR,
            environment VARCHAR,
            operation VARCHAR,
            provider VARCHAR,
            request_model VARCHAR,
            response_model VARCHAR,
            model VARCHAR,
            input_tokens BIGINT,
            output_tokens BIGINT,
            total_tokens BIGINT,
            cached_input_tokens BIGINT,
            cache_write_tokens BIGINT,
            reasoning_tokens BIGINT,
            ttft_ms DOUBLE,
            tpot_ms DOUBLE,
            finish_reason VARCHAR,
            temperature DOUBLE,
            top_p DOUBLE,
            max_tokens BIGINT,
            seed BIGINT,
            is_streaming BOOLEAN,
            user_id VARCHAR,
            session_id VARCHAR,
            tenant_id VARCHAR,
            feature VARCHAR,
            prompt_name VARCHAR,
            prompt_version VARCHAR,
            variant VARCHAR,
            input VARCHAR,
            output VARCHAR,
            input_messages VARCHAR,
            output_messages VARCHAR,
            documents VARCHAR,
            cost_usd DOUBLE,
            attributes VARCHAR,
            resource_attributes VARCHAR,
            ingest_notes VARCHAR[],
            _key_trace UBIGINT NOT NULL,
            _key_span UBIGINT NOT NULL,
            PRIMARY KEY (_key_trace, _key_span)
        )""",
        ],
    ),
    (
        2,
        [
            # Append-only: scores from evaluators, people and end users (feedback). A span-level
            # score has span_id; a trace-level one (user feedback on an answer) only trace_id.
            """CREATE TABLE scores (
            project_id VARCHAR NOT NULL,
            score_id VARCHAR NOT NULL,
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR,
            name VARCHAR NOT NULL,
            value DOUBLE,
            label VARCHAR,
            passed BOOLEAN,
            explanation VARCHAR,
            source VARCHAR NOT NULL,
            evaluator VARCHAR,
            evaluator_version VARCHAR,
            user_id VARCHAR,
            created_at TIMESTAMP NOT NULL
        )""",
        ],
    ),
    (
        3,
        [
            # The commit that stored each span, increasing: consumers (the evaluation runner)
            # read "spans committed after N" instead of scanning by time, which misses spans
            # that arrive late. Monotonic in insertion order, so DuckDB's zone maps prune by it.
            "ALTER TABLE spans ADD COLUMN ingest_seq BIGINT NOT NULL DEFAULT 0",
        ],
    ),
    (
        4,
        [
            # Evaluation: score details (an LLM judge's tokens and cost, ROUGE-L/BLEU...) as JSON.
            "ALTER TABLE scores ADD COLUMN details VARCHAR",
            # Durable cursors of the evaluation runner: the last (ingest_seq, span position)
            # evaluated, and the last user feedback looked at, so a restart resumes.
            """CREATE TABLE eval_cursors (
            name VARCHAR PRIMARY KEY,
            seq BIGINT NOT NULL,
            pos VARCHAR NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )""",
            """CREATE TABLE datasets (
            project_id VARCHAR NOT NULL,
            dataset_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            filter VARCHAR NOT NULL,
            num_rows INTEGER NOT NULL,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (project_id, dataset_id)
        )""",
            """CREATE TABLE dataset_rows (
            project_id VARCHAR NOT NULL,
            dataset_id VARCHAR NOT NULL,
            row_num INTEGER NOT NULL,
            row_json VARCHAR NOT NULL
        )""",
        ],
    ),
    (
        5,
        [
            # Monitoring. Rules are versioned: every change (a deletion too) appends a row;
            # the rule is the highest version of its name.
            """CREATE TABLE alert_rules (
            project_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            spec VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            deleted BOOLEAN NOT NULL,
            author VARCHAR,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (project_id, name, version)
        )""",
            # One row per (rule, group) episode; active ones (pending/firing) are the monitor's
            # state, reloaded at start so alerts survive a restart.
            """CREATE TABLE alerts (
            project_id VARCHAR NOT NULL,
            alert_id VARCHAR PRIMARY KEY,
            rule VARCHAR NOT NULL,
            rule_version INTEGER NOT NULL,
            rule_type VARCHAR NOT NULL,
            severity VARCHAR NOT NULL,
            "group" VARCHAR NOT NULL,
            group_key VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            value DOUBLE,
            threshold DOUBLE,
            "window" VARCHAR,
            pending_since TIMESTAMP NOT NULL,
            started_at TIMESTAMP,
            ended_at TIMESTAMP,
            last_evaluated_at TIMESTAMP NOT NULL,
            last_notified_at TIMESTAMP,
            acknowledged_at TIMESTAMP,
            acknowledged_by VARCHAR,
            ack_expires_at TIMESTAMP,
            summary VARCHAR NOT NULL,
            details VARCHAR NOT NULL
        )""",
            "CREATE INDEX alerts_project_status ON alerts (project_id, status)",
            """CREATE TABLE alert_events (
            project_id VARCHAR NOT NULL,
            event_id VARCHAR NOT NULL,
            alert_id VARCHAR NOT NULL,
            rule VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            "at" TIMESTAMP NOT NULL,
            value DOUBLE,
            message VARCHAR NOT NULL
        )""",
            """CREATE TABLE alert_silences (
            project_id VARCHAR NOT NULL,
            silence_id VARCHAR PRIMARY KEY,
            matchers VARCHAR NOT NULL,
            starts_at TIMESTAMP NOT NULL,
            ends_at TIMESTAMP NOT NULL,
            created_by VARCHAR,
            comment VARCHAR,
            created_at TIMESTAMP NOT NULL
        )""",
            """CREATE TABLE alert_deliveries (
            project_id VARCHAR NOT NULL,
            delivery_id VARCHAR PRIMARY KEY,
            alert_id VARCHAR NOT NULL,
            channel VARCHAR NOT NULL,
            event VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            attempts INTEGER NOT NULL,
            last_error VARCHAR,
            payload VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )""",
            """CREATE TABLE drift_results (
            project_id VARCHAR NOT NULL,
            result_id VARCHAR PRIMARY KEY,
            job VARCHAR NOT NULL,
            detector VARCHAR NOT NULL,
            feature VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            baseline_start TIMESTAMP,
            baseline_end TIMESTAMP,
            current_start TIMESTAMP NOT NULL,
            current_end TIMESTAMP NOT NULL,
            num_baseline INTEGER NOT NULL,
            num_current INTEGER NOT NULL,
            score DOUBLE,
            threshold DOUBLE,
            p_value DOUBLE,
            fired BOOLEAN NOT NULL,
            status VARCHAR NOT NULL,
            details VARCHAR NOT NULL
        )""",
        ],
    ),
    (
        6,
        [
            # Dashboard users: people who log in at /login (API keys stay for programs).
            # Passwords are argon2id hashes; sessions are stored as SHA-256 of their token.
            """CREATE TABLE users (
            user_id VARCHAR PRIMARY KEY,
            email VARCHAR NOT NULL UNIQUE,
            password_hash VARCHAR NOT NULL,
            is_admin BOOLEAN NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
            """CREATE TABLE user_sessions (
            session_hash VARCHAR PRIMARY KEY,
            user_id VARCHAR NOT NULL,
            csrf_token VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            expires_at TIMESTAMP NOT NULL
        )""",
            # Which projects a user may see: a user sees only the projects they belong to.
            """CREATE TABLE memberships (
            user_id VARCHAR NOT NULL,
            project_id VARCHAR NOT NULL,
            role VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (user_id, project_id)
        )""",
        ],
    ),
    (
        7,
        [
            # Privacy and security. A project's redaction policy and retention; NULL columns
            # mean "the server's default" (settings), so changing a default reaches every
            # project that never chose its own.
            """CREATE TABLE project_privacy (
            project_id VARCHAR PRIMARY KEY,
            policy VARCHAR,
            retention_days INTEGER,
            updated_at TIMESTAMP NOT NULL
        )""",
            # Admin actions (keys, privacy, erasure, retention, rules...), append-only.
            """CREATE TABLE audit_log (
            project_id VARCHAR,
            audit_id VARCHAR PRIMARY KEY,
            "at" TIMESTAMP NOT NULL,
            actor VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            target VARCHAR,
            details VARCHAR NOT NULL
        )""",
            'CREATE INDEX audit_log_project_at ON audit_log (project_id, "at")',
            "ALTER TABLE api_keys ADD COLUMN name VARCHAR",
        ],
    ),
    (
        8,
        [
            # Budgets: one row per (project, name); the spec is the budget as JSON. ``source``
            # is "api" or "file" (file budgets are read-only through the API).
            """CREATE TABLE budgets (
            project_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            spec VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            PRIMARY KEY (project_id, name)
        )""",
            # Soft thresholds already alerted: one row per budget, scope value, period and
            # threshold, so each alerts once per period.
            """CREATE TABLE budget_alerts (
            project_id VARCHAR NOT NULL,
            budget VARCHAR NOT NULL,
            scope_value VARCHAR NOT NULL,
            period_start TIMESTAMP NOT NULL,
            threshold DOUBLE NOT NULL,
            spent_usd DOUBLE NOT NULL,
            fired_at TIMESTAMP NOT NULL,
            PRIMARY KEY (project_id, budget, scope_value, period_start, threshold)
        )""",
        ],
    ),
    (
        9,
        [
            # OTLP metrics and scraped Prometheus samples, one row per data point. Histograms
            # (explicit and exponential, converted exactly to explicit bounds at ingest) keep
            # their buckets so percentiles can be aggregated across points; ``alias`` is the
            # shared name a scrape mapping gives an engine's metric (vllm:... -> serving_...).
            """CREATE TABLE otel_metric_points (
            project_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            alias VARCHAR,
            type VARCHAR NOT NULL,
            unit VARCHAR,
            temporality VARCHAR,
            monotonic BOOLEAN,
            service_name VARCHAR,
            attributes VARCHAR NOT NULL,
            resource_attributes VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            "time" TIMESTAMP NOT NULL,
            start_time TIMESTAMP,
            value DOUBLE,
            "count" DOUBLE,
            "sum" DOUBLE,
            "min" DOUBLE,
            "max" DOUBLE,
            bounds DOUBLE[],
            bucket_counts DOUBLE[],
            exp_scale INTEGER
        )""",
            # No index: queries filter by name OR alias and a time range, which an ART index
            # does not serve (zonemaps do), and it cost a quarter of the insert rate here.
            """CREATE TABLE otel_logs (
            project_id VARCHAR NOT NULL,
            "time" TIMESTAMP NOT NULL,
            observed_time TIMESTAMP,
            severity_number INTEGER,
            severity_text VARCHAR,
            body VARCHAR,
            event_name VARCHAR,
            attributes VARCHAR NOT NULL,
            resource_attributes VARCHAR NOT NULL,
            service_name VARCHAR,
            scope VARCHAR,
            trace_id VARCHAR,
            span_id VARCHAR
        )""",
            "CREATE INDEX otel_logs_trace ON otel_logs (project_id, trace_id)",
            # Release markers: posted, or recorded the first time a new service.version, model
            # or prompt version is seen in spans.
            """CREATE TABLE releases (
            project_id VARCHAR NOT NULL,
            release_id VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,
            service VARCHAR,
            version VARCHAR NOT NULL,
            git_sha VARCHAR,
            "at" TIMESTAMP NOT NULL,
            notes VARCHAR,
            created_at TIMESTAMP NOT NULL
        )""",
            'CREATE INDEX releases_project_at ON releases (project_id, "at")',
        ],
    ),
    (
        10,
        [
            # The prompt registry: versions are append-only; labels (production, staging...)
            # point at one version each and move.
            """CREATE TABLE prompt_versions (
            project_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            kind VARCHAR NOT NULL,
            type VARCHAR NOT NULL,
            template VARCHAR NOT NULL,
            model VARCHAR,
            parameters VARCHAR NOT NULL,
            author VARCHAR,
            message VARCHAR,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (project_id, name, version)
        )""",
            """CREATE TABLE prompt_labels (
            project_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            label VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            updated_by VARCHAR,
            PRIMARY KEY (project_id, name, label)
        )""",
        ],
    ),
    (
        11,
        [
            # Business outcomes (docs/signals.md): what a trace or a session led to
            # (converted, ticket_resolved...), recorded by the app after the fact. Metrics
            # join them to the spans of their trace or session.
            """CREATE TABLE outcomes (
            project_id VARCHAR NOT NULL,
            outcome_id VARCHAR PRIMARY KEY,
            trace_id VARCHAR,
            session_id VARCHAR,
            name VARCHAR NOT NULL,
            value DOUBLE NOT NULL,
            user_id VARCHAR,
            metadata VARCHAR,
            created_at TIMESTAMP NOT NULL
        )""",
            "CREATE INDEX outcomes_project_name ON outcomes (project_id, name)",
        ],
    ),
    (
        12,
        [
            # One row the ingest writer rewrites to learn whether the store can write again
            # after a failed commit (disk full, read-only): see TraceStore.check_writable.
            """CREATE TABLE store_probe (
            id INTEGER PRIMARY KEY,
            probed_at TIMESTAMP NOT NULL
        )""",
        ],
    ),
    (
        13,
        [
            # Scale-out coordination (docs/scale-out.md): evaluation workers claim ranges of
            # commits (ingest_seq) with leases, so N workers never score a span twice and a dead
            # worker's range is taken over; leader leases keep one active monitor.
            """CREATE TABLE eval_frontiers (
            name VARCHAR PRIMARY KEY,
            seq BIGINT NOT NULL
        )""",
            """CREATE TABLE eval_claims (
            name VARCHAR NOT NULL,
            lo BIGINT NOT NULL,
            hi BIGINT NOT NULL,
            owner VARCHAR NOT NULL,
            token VARCHAR NOT NULL,
            expires_at DOUBLE NOT NULL,
            attempts INTEGER NOT NULL,
            claimed_at DOUBLE NOT NULL,
            PRIMARY KEY (name, lo)
        )""",
            """CREATE TABLE leader_leases (
            name VARCHAR PRIMARY KEY,
            owner VARCHAR NOT NULL,
            expires_at DOUBLE NOT NULL
        )""",
        ],
    ),
    (
        14,
        [
            # The key of the OTLP request a metric point or log record came from (a hash of
            # its content): an exporter's retry of a request that was committed but not
            # acknowledged (a timeout, a dropped connection) is acknowledged again without
            # storing its rows twice. A column of the rows, written in the same INSERT (one
            # value per request, which compresses to nothing), not a table of keys: a second
            # table cost each commit 5-10 ms with a primary key, 0-4 ms without
            # (docs/benchmarks.md). The writer checks the recent keys in memory.
            "ALTER TABLE otel_metric_points ADD COLUMN batch_key VARCHAR",
            "ALTER TABLE otel_logs ADD COLUMN batch_key VARCHAR",
        ],
    ),
    (
        15,
        [
            # Spans without their primary key: DuckDB keeps the key's ART index in memory
            # (~50 MiB per million spans), so the store's size was bounded by its memory limit
            # and every commit updated it. The writer now leaves out the spans already stored
            # with a start time in the batch's ranges (DuckDBStore.insert_batches). The table is
            # copied in this migration's transaction, in its order (zone maps keep pruning by
            # time), with its columns, types, NOT NULLs and defaults; spans has no other index.
            """CREATE TABLE spans_v15 (
            project_id VARCHAR NOT NULL,
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR NOT NULL,
            parent_span_id VARCHAR,
            name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            start_time TIMESTAMP NOT NULL,
            end_time TIMESTAMP NOT NULL,
            duration_ms DOUBLE NOT NULL,
            status VARCHAR NOT NULL,
            status_message VARCHAR,
            service_name VARCHAR,
            service_version VARCHAR,
            environment VARCHAR,
            operation VARCHAR,
            provider VARCHAR,
            request_model VARCHAR,
            response_model VARCHAR,
            model VARCHAR,
            input_tokens BIGINT,
            output_tokens BIGINT,
            total_tokens BIGINT,
            cached_input_tokens BIGINT,
            cache_write_tokens BIGINT,
            reasoning_tokens BIGINT,
            ttft_ms DOUBLE,
            tpot_ms DOUBLE,
            finish_reason VARCHAR,
            temperature DOUBLE,
            top_p DOUBLE,
            max_tokens BIGINT,
            seed BIGINT,
            is_streaming BOOLEAN,
            user_id VARCHAR,
            session_id VARCHAR,
            tenant_id VARCHAR,
            feature VARCHAR,
            prompt_name VARCHAR,
            prompt_version VARCHAR,
            variant VARCHAR,
            input VARCHAR,
            output VARCHAR,
            input_messages VARCHAR,
            output_messages VARCHAR,
            documents VARCHAR,
            cost_usd DOUBLE,
            attributes VARCHAR,
            resource_attributes VARCHAR,
            ingest_notes VARCHAR[],
            _key_trace UBIGINT NOT NULL,
            _key_span UBIGINT NOT NULL,
            ingest_seq BIGINT NOT NULL DEFAULT 0
        )""",
            "INSERT INTO spans_v15 SELECT * FROM spans",
            "DROP TABLE spans",
            "ALTER TABLE spans_v15 RENAME TO spans",
        ],
    ),
    (
        16,
        [
            # The scored span's start time, kept on the score: score metrics count a score in
            # its span's time, and joining 1M spans to range 1M scores took ~250 ms per metric
            # (a scan of the scores alone, ~4 ms). Filled at insert (from the evaluator's span,
            # else looked up); here for the scores stored before. A score whose span is not
            # stored keeps NULL and is still joined, so it counts once its span arrives.
            "ALTER TABLE scores ADD COLUMN span_start_time TIMESTAMP",
            # a span stored twice (re-sent with another start) gives its earliest start, as
            # an insert does (_duckdb_evals._fill_span_starts)
            "UPDATE scores SET span_start_time = f.st FROM (SELECT sc.rowid AS rid,"
            " min(s.start_time) AS st FROM scores sc JOIN spans s"
            " ON s._key_trace = hash(sc.project_id, sc.trace_id)"
            " AND s._key_span = TRY_CAST('0x' || sc.span_id AS UBIGINT)"
            " AND s.project_id = sc.project_id AND s.trace_id = sc.trace_id"
            " AND s.span_id = sc.span_id WHERE sc.span_id IS NOT NULL GROUP BY sc.rowid) f"
            " WHERE scores.rowid = f.rid",
        ],
    ),
    (
        17,
        [
            # Only the newest score of each (span or trace, name, source) counts in the score
            # metrics and distributions (docs/evals.md): the older ones are marked when a newer
            # one is written (_duckdb_evals._SUPERSEDE); here for the scores stored before.
            "ALTER TABLE scores ADD COLUMN superseded BOOLEAN DEFAULT false",
            "UPDATE scores SET superseded = true WHERE rowid IN (SELECT rid FROM"
            " (SELECT rowid AS rid, row_number() OVER (PARTITION BY project_id, trace_id,"
            " span_id, name, source ORDER BY created_at DESC, score_id DESC) AS rn"
            " FROM scores WHERE coalesce(label, '') <> 'failed') WHERE rn > 1)",
        ],
    ),
]
