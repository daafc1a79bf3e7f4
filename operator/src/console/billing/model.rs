//! Billing types shared by the rules, the store, the engine, the pages and the API.
//! Amounts are integers in the currency's minor unit; days and months are UTC.

use serde::{Deserialize, Serialize};

pub use crate::api::SuspensionReason;

/// `YYYY-MM-DD` (UTC) of a Unix time.
pub fn day_of(unix: i64) -> String {
    let ts = jiff::Timestamp::from_second(unix).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%d")
        .to_string()
}

/// Start (Unix seconds, UTC midnight) of a `YYYY-MM-DD` day; `None` when not a date.
pub fn day_start(day: &str) -> Option<i64> {
    let d: jiff::civil::Date = day.parse().ok()?;
    (day.len() == 10)
        .then(|| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .flatten()
        .map(|z| z.timestamp().as_second())
}

/// Currencies whose minor unit is the unit itself (ISO 4217 exponent 0).
const ZERO_DECIMAL: [&str; 16] = [
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

/// Currencies whose minor unit is a thousandth (ISO 4217 exponent 3).
const THREE_DECIMAL: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// The active ISO 4217 currency codes (funds and precious metals excluded).
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Whether `code` is an active ISO 4217 currency code (upper case).
pub fn is_iso_currency(code: &str) -> bool {
    ISO_4217.contains(&code)
}

/// Minor units per unit of `currency` (100 for EUR, 1 for JPY, 1000 for KWD).
pub fn minor_per_unit(currency: &str) -> i64 {
    if ZERO_DECIMAL.contains(&currency) {
        1
    } else if THREE_DECIMAL.contains(&currency) {
        1000
    } else {
        100
    }
}

/// Decimal digits of `currency`'s minor unit (0, 2 or 3).
fn decimals(currency: &str) -> usize {
    match minor_per_unit(currency) {
        1 => 0,
        1000 => 3,
        _ => 2,
    }
}

/// `12.34 EUR`, `-5.00 EUR`, `1200 JPY`, `1.250 KWD`.
pub fn format_money(minor: i64, currency: &str) -> String {
    let per = minor_per_unit(currency);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let per_u = per.unsigned_abs();
    match decimals(currency) {
        0 => format!("{sign}{abs} {currency}"),
        d => format!(
            "{sign}{}.{:0d$} {currency}",
            abs / per_u,
            abs % per_u,
            d = d
        ),
    }
}

/// Parses `12`, `12.3`, `12.34` (a form or API amount in units) into minor units; `None`
/// for anything else (negative, more decimals than the currency has, garbage).
pub fn parse_money(s: &str, currency: &str) -> Option<i64> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || whole.len() > 12 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let per = minor_per_unit(currency);
    let digits = decimals(currency);
    if frac.len() > digits || (s.contains('.') && frac.is_empty()) {
        return None;
    }
    let frac_minor: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<digits$}").parse().ok()?
    };
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(per)?
        .checked_add(frac_minor)
}

/// One entry of a plan's price history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPrice {
    pub id: i64,
    pub plan: String,
    /// ISO 4217, upper case (`EUR`).
    pub currency: String,
    pub monthly_cents: i64,
    pub setup_fee_cents: i64,
    pub trial_days: i64,
    /// `YYYY-MM-DD` (UTC): the first day this price applies.
    pub effective_from: String,
    pub created_by: String,
    pub created_at: i64,
}

/// A price to add (form or API).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewPrice {
    pub plan: String,
    pub currency: String,
    /// Units, as typed: `29`, `29.90`.
    pub monthly: String,
    #[serde(default)]
    pub setup_fee: String,
    #[serde(default)]
    pub trial_days: Option<i64>,
    /// `YYYY-MM-DD`; empty means today.
    #[serde(default)]
    pub effective_from: String,
}

/// What happens to a canceled client's volume when its Assistant is deleted at the end of
/// retention (the Assistant's `spec.storage.onDelete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum VolumeOnCancel {
    #[default]
    Retain,
    Delete,
}

/// The business's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingSettings {
    /// Days a client stays `past_due` before it is suspended.
    pub grace_days: i64,
    /// An invoice is due this many days after it is issued; an unpaid invoice past due
    /// makes a client without a payment provider `past_due`.
    pub payment_terms_days: i64,
    /// Days a canceled client's Assistant is kept (suspended) before it is deleted.
    pub retention_days: i64,
    pub canceled_volume: VolumeOnCancel,
    /// Whether days the client was suspended all day are billed.
    pub bill_suspended_days: bool,
    pub invoice_prefix: String,
    pub credit_note_prefix: String,
    /// The seller block printed on invoices (name, address, tax id), free text.
    pub seller: String,
    pub updated_at: i64,
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            grace_days: 7,
            payment_terms_days: 14,
            retention_days: 30,
            canceled_volume: VolumeOnCancel::Retain,
            bill_suspended_days: false,
            invoice_prefix: "INV".into(),
            credit_note_prefix: "CN".into(),
            seller: String::new(),
            updated_at: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    Trialing,
    Active,
    PastDue,
    Suspended,
    Canceled,
}

impl SubscriptionState {
    pub const ALL: [SubscriptionState; 5] = [
        SubscriptionState::Trialing,
        SubscriptionState::Active,
        SubscriptionState::PastDue,
        SubscriptionState::Suspended,
        SubscriptionState::Canceled,
    ];

    /// As stored and in the API (`past_due`).
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionState::Trialing => "trialing",
            SubscriptionState::Active => "active",
            SubscriptionState::PastDue => "past_due",
            SubscriptionState::Suspended => "suspended",
            SubscriptionState::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<SubscriptionState> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for SubscriptionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client's subscription (one per client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub client_id: i64,
    pub state: SubscriptionState,
    pub started_at: i64,
    pub trial_ends_at: Option<i64>,
    pub past_due_since: Option<i64>,
    /// While `past_due`: when the grace period ends and the client is suspended.
    pub suspend_at: Option<i64>,
    pub suspended_at: Option<i64>,
    pub suspension_reason: Option<SuspensionReason>,
    /// A scheduled cancellation (the end of the period), or when it took effect.
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    /// While `canceled`: when retention ends and the Assistant is deleted.
    pub delete_at: Option<i64>,
    pub deleted_at: Option<i64>,
    /// The payment provider's customer id (`cus_...`): provider events for it apply here.
    pub external_customer_id: Option<String>,
    pub setup_fee_invoiced: bool,
    /// `created` of the last provider event applied: an older one arriving late is ignored.
    pub last_provider_event_at: Option<i64>,
    pub updated_at: i64,
}

/// The provider's view of a subscription (`customer.subscription.*` `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderStatus {
    Trialing,
    Active,
    /// `past_due`, `unpaid`, `incomplete`: payment is owed.
    PastDue,
    /// `canceled`, `incomplete_expired`, or the subscription was deleted.
    Canceled,
}

/// Something that may move a subscription (see `state::apply`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// Time passed: the trial, the grace period, a scheduled cancellation or retention may
    /// have ended.
    Clock,
    /// A payment failed at `at` (provider `invoice.payment_failed`, or an invoice of ours
    /// unpaid past its due date).
    PaymentFailed { at: i64, reference: String },
    /// A payment succeeded (provider `invoice.paid`, or an admin marked an invoice paid
    /// and nothing else is overdue).
    PaymentSucceeded { at: i64, reference: String },
    /// Cancel at the end of the current month, or now.
    Cancel { at_period_end: bool },
    /// Undo a scheduled cancellation, or bring back a canceled client not yet deleted.
    Reactivate,
    /// The provider's subscription status changed; `cancel_at` when it cancels later.
    /// `cancel_at_changed`: the event changed the provider's scheduled cancellation
    /// (`previous_attributes` names `cancel_at` or `cancel_at_period_end`); when `false`,
    /// `cancel_at` is not applied and a cancellation scheduled in the console stays.
    ProviderStatus {
        status: ProviderStatus,
        cancel_at: Option<i64>,
        #[serde(default = "yes")]
        cancel_at_changed: bool,
    },
    /// The engine deleted the Assistant at the end of retention.
    Deleted,
}

/// Inputs stored before `cancel_at_changed` existed applied their `cancel_at`.
fn yes() -> bool {
    true
}

/// What `state::apply` decided: the new subscription and a name for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub from: SubscriptionState,
    pub to: SubscriptionState,
    /// `trial_ended`, `payment_failed`, `grace_expired`, `payment_succeeded`,
    /// `cancel_scheduled`, `canceled`, `reactivated`, `deleted`, ...: the audit action is
    /// `billing.<event>`.
    pub event: &'static str,
    pub subscription: Subscription,
}

/// A transition the clock will make (the "needs attention" view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upcoming {
    pub client_id: i64,
    pub at: i64,
    /// `trial_ends`, `suspend`, `cancel`, `delete`.
    pub event: &'static str,
    /// For people: "will be suspended for non-payment (grace ends)".
    pub description: String,
}

/// What the cluster should have for a subscription (`state::desired_cluster`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterIntent {
    /// Billing does not hold the Assistant: lift a suspension billing made, leave others.
    Serve,
    /// Suspended with this reason annotation.
    Suspend(SuspensionReason),
    /// Retention is over: delete the Assistant (volume per settings), once.
    Delete,
    /// Deleted already: nothing to do.
    Gone,
}

/// One row of the billing timeline: from `at` on, the client had this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelinePoint {
    pub at: i64,
    pub plan: String,
    /// The Assistant's `spec.suspended`.
    pub suspended: bool,
    pub state: SubscriptionState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// Days on a plan at one price.
    Plan,
    SetupFee,
    /// A credit note's line (negative).
    Credit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub kind: LineKind,
    pub description: String,
    pub plan: Option<String>,
    /// First and last day covered (inclusive, `YYYY-MM-DD`); empty for a setup fee.
    pub from: String,
    pub to: String,
    /// Days billed, and the month's days (the proration).
    pub days: i64,
    pub days_in_month: i64,
    /// The monthly price the days are prorated from (or the fee).
    pub unit_cents: i64,
    pub amount_cents: i64,
}

/// An invoice before it has a number (`invoice::draft_invoice`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DraftInvoice {
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    pub total_cents: i64,
    /// Whether the setup fee is among the lines (the store then marks it invoiced).
    pub includes_setup_fee: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    Invoice,
    CreditNote,
}

impl DocumentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Invoice => "invoice",
            DocumentKind::CreditNote => "credit_note",
        }
    }
}

/// Who an invoice was issued to, as the records said then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillTo {
    pub name: String,
    pub email: String,
    pub assistant: String,
}

/// An issued invoice or credit note (immutable but for the payment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: i64,
    pub number: String,
    pub kind: DocumentKind,
    pub client_id: i64,
    /// `YYYY-MM` covered (a credit note: the month of the invoice it corrects).
    pub month: String,
    pub corrects_number: Option<String>,
    pub currency: String,
    pub total_cents: i64,
    pub lines: Vec<InvoiceLine>,
    pub bill_to: BillTo,
    pub seller: String,
    pub note: String,
    pub issued_at: i64,
    pub due_at: i64,
    pub issued_by: String,
    pub paid_at: Option<i64>,
    /// `console` or the provider (`stripe`).
    pub paid_via: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_decimal_currencies_have_a_thousandth_minor_unit() {
        for c in ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"] {
            assert_eq!(minor_per_unit(c), 1000, "{c}");
        }
        assert_eq!(minor_per_unit("EUR"), 100);
        assert_eq!(minor_per_unit("JPY"), 1);
        assert_eq!(format_money(1250, "KWD"), "1.250 KWD");
        assert_eq!(format_money(-5, "BHD"), "-0.005 BHD");
        assert_eq!(format_money(1234, "EUR"), "12.34 EUR");
        assert_eq!(format_money(1200, "JPY"), "1200 JPY");
        assert_eq!(parse_money("1.25", "KWD"), Some(1250));
        assert_eq!(parse_money("1.255", "KWD"), Some(1255));
        assert_eq!(parse_money("1.2", "KWD"), Some(1200));
        assert_eq!(parse_money("3", "OMR"), Some(3000));
        assert_eq!(parse_money("1.2555", "KWD"), None);
        assert_eq!(parse_money("1.255", "EUR"), None);
        assert_eq!(parse_money("12.3", "EUR"), Some(1230));
    }

    #[test]
    fn currencies_are_checked_against_iso_4217() {
        for c in ["EUR", "USD", "JPY", "KWD", "CHF", "GBP"] {
            assert!(is_iso_currency(c), "{c}");
        }
        for c in ["ABC", "XXX", "EURO", "eur", ""] {
            assert!(!is_iso_currency(c), "{c}");
        }
    }
}
