-- Running minutes per client, month AND the plan observed running in that minute (so an
-- invoice can prorate a plan change). usage_samples stays the once-per-minute guard of a
-- client: a minute is added here only when it was new there.
CREATE TABLE usage_plan_minutes (
    client_id BIGINT NOT NULL,
    month TEXT NOT NULL,
    plan TEXT NOT NULL,
    running_minutes BIGINT NOT NULL,
    last_minute BIGINT NOT NULL,
    PRIMARY KEY (client_id, month, plan)
);

-- Minutes the sampler could not observe the cluster (unreachable, stale watch cache): no
-- client was billed for them, and the usage report says so. One row per minute keeps a
-- second console replica from counting a gap twice.
CREATE TABLE usage_gaps (
    minute BIGINT PRIMARY KEY,
    month TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX usage_gaps_month ON usage_gaps (month);

-- Minutes sampled before this migration keep the plan the record had then.
INSERT INTO usage_plan_minutes (client_id, month, plan, running_minutes, last_minute)
SELECT u.client_id, u.month, c.plan, u.running_minutes, u.last_minute
FROM usage_samples u JOIN clients c ON c.id = u.client_id;

-- The Assistant's spec.plan is the one source of truth for the plan: the client record
-- keeps only the business side, so its copy of the plan goes.
ALTER TABLE clients DROP COLUMN plan;
