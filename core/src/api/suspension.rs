//! Why an Assistant is suspended, when something other than an admin's "suspend" did it.
//! The console's billing engine sets `spec.suspended` together with this annotation; the
//! operator shows the reason in status, and only a suspension carrying it is lifted by
//! billing (a payment never resumes a client an admin suspended by hand).

/// `non-payment` or `canceled` (see [`SuspensionReason`]); absent for a suspension by request.
pub const SUSPENDED_REASON_ANNOTATION: &str = "clawhost.dev/suspended-reason";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuspensionReason {
    /// A payment failed and the grace period ran out.
    NonPayment,
    /// The subscription was canceled; the Assistant waits out the retention period.
    Canceled,
}

impl SuspensionReason {
    pub const ALL: [SuspensionReason; 2] =
        [SuspensionReason::NonPayment, SuspensionReason::Canceled];

    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            SuspensionReason::NonPayment => "non-payment",
            SuspensionReason::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<SuspensionReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s.trim())
    }

    /// For people: status messages, the console.
    pub fn describe(self) -> &'static str {
        match self {
            SuspensionReason::NonPayment => "suspended for non-payment",
            SuspensionReason::Canceled => "suspended: subscription canceled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_values_round_trip() {
        for r in SuspensionReason::ALL {
            assert_eq!(SuspensionReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(SuspensionReason::parse("maintenance"), None);
    }
}
