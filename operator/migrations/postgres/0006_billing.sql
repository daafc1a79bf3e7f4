-- Billing (issue 15): prices with history, subscriptions, what each client had day by day,
-- invoices and credit notes with gap-free numbers, and the payment provider's events.
-- Amounts are integers in the currency's minor unit (cents); dates are UTC.

-- A price applies from `effective_from` (YYYY-MM-DD, UTC) until the plan's next price:
-- history is kept, and a new price may not start before today (never retroactive).
CREATE TABLE plan_prices (
    id BIGSERIAL PRIMARY KEY,
    plan TEXT NOT NULL,
    currency TEXT NOT NULL,
    monthly_cents BIGINT NOT NULL,
    setup_fee_cents BIGINT NOT NULL DEFAULT 0,
    trial_days BIGINT NOT NULL DEFAULT 0,
    effective_from TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (plan, effective_from)
);

-- The business's rules: one row. Booleans are 0/1 (one code path on both databases).
CREATE TABLE billing_settings (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    grace_days BIGINT NOT NULL DEFAULT 7,
    payment_terms_days BIGINT NOT NULL DEFAULT 14,
    retention_days BIGINT NOT NULL DEFAULT 30,
    canceled_volume TEXT NOT NULL DEFAULT 'Retain',
    bill_suspended_days BIGINT NOT NULL DEFAULT 0,
    invoice_prefix TEXT NOT NULL DEFAULT 'INV',
    credit_note_prefix TEXT NOT NULL DEFAULT 'CN',
    seller TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL DEFAULT 0
);
INSERT INTO billing_settings (id) VALUES (1);

-- One subscription per client. `state` is trialing|active|past_due|suspended|canceled;
-- the dates say when the next automatic transition happens (suspend_at, cancel_at,
-- delete_at) and when the last ones did.
CREATE TABLE subscriptions (
    client_id BIGINT PRIMARY KEY,
    state TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    trial_ends_at BIGINT,
    past_due_since BIGINT,
    suspend_at BIGINT,
    suspended_at BIGINT,
    suspension_reason TEXT,
    cancel_at BIGINT,
    canceled_at BIGINT,
    delete_at BIGINT,
    deleted_at BIGINT,
    external_customer_id TEXT,
    setup_fee_invoiced BIGINT NOT NULL DEFAULT 0,
    last_provider_event_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX subscriptions_customer ON subscriptions (external_customer_id)
    WHERE external_customer_id IS NOT NULL;

-- What a subscribed client had from `at` on: the plan and spec.suspended observed on the
-- Assistant, and the subscription state. A row is added only when one of them changes;
-- invoices are computed from these rows.
CREATE TABLE billing_timeline (
    id BIGSERIAL PRIMARY KEY,
    client_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    plan TEXT NOT NULL,
    suspended BIGINT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX billing_timeline_client ON billing_timeline (client_id, at, id);

-- Gap-free numbering: the counter is advanced in the transaction that inserts the
-- document, so a failed insert gives its number back.
CREATE TABLE document_counters (
    series TEXT PRIMARY KEY,
    last_number BIGINT NOT NULL
);

-- Invoices and credit notes (kind invoice|credit_note). Immutable once issued (triggers
-- below): only paid_at/paid_via are ever set, once. A correction is a credit note.
CREATE TABLE invoices (
    id BIGSERIAL PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    client_id BIGINT NOT NULL,
    month TEXT NOT NULL,
    corrects_number TEXT,
    currency TEXT NOT NULL,
    total_cents BIGINT NOT NULL,
    lines_json TEXT NOT NULL,
    bill_to_json TEXT NOT NULL,
    seller TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    issued_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    issued_by TEXT NOT NULL,
    paid_at BIGINT,
    paid_via TEXT
);
CREATE UNIQUE INDEX invoices_one_per_month ON invoices (client_id, month) WHERE kind = 'invoice';
CREATE INDEX invoices_month ON invoices (month, id);
CREATE INDEX invoices_client ON invoices (client_id, id);

-- Every event the payment provider sent, once (idempotent by its id), and what it did.
CREATE TABLE provider_events (
    event_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    type TEXT NOT NULL,
    created BIGINT NOT NULL,
    customer TEXT,
    client_id BIGINT,
    received_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX provider_events_client ON provider_events (client_id, received_at);

CREATE FUNCTION clawhost_invoices_immutable() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'issued invoices are never deleted: correct one with a credit note';
    END IF;
    IF (NEW.number, NEW.kind, NEW.client_id, NEW.month, NEW.corrects_number, NEW.currency,
        NEW.total_cents, NEW.lines_json, NEW.bill_to_json, NEW.seller, NEW.note,
        NEW.issued_at, NEW.due_at, NEW.issued_by)
       IS DISTINCT FROM
       (OLD.number, OLD.kind, OLD.client_id, OLD.month, OLD.corrects_number, OLD.currency,
        OLD.total_cents, OLD.lines_json, OLD.bill_to_json, OLD.seller, OLD.note,
        OLD.issued_at, OLD.due_at, OLD.issued_by) THEN
        RAISE EXCEPTION 'issued invoices are immutable: correct one with a credit note';
    END IF;
    IF OLD.paid_at IS NOT NULL AND (NEW.paid_at, NEW.paid_via) IS DISTINCT FROM (OLD.paid_at, OLD.paid_via) THEN
        RAISE EXCEPTION 'this invoice is already paid';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION clawhost_invoices_immutable();
