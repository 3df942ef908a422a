//! Customer segments, defined once: the merchant API's `GET /api/customers?segment=` and the merchant app's
//! Customers screen filter with these conditions, and `docs/merchant-app.md` quotes them.
//!
//! Every segment is a condition on a customer's purchases (`commerce::read::purchase!`: not deleted, not
//! canceled), as the customers listing computes them (`a.orders_count`, `a.total_spent`, `a.last_order_at`):
//!
//! | segment | condition |
//! |---|---|
//! | `new` | exactly one purchase, made in the last 30 days |
//! | `repeat` | two purchases or more |
//! | `vip` | spent 2,000 or more in total (the store's currency), or five purchases or more |
//! | `at_risk` | two purchases or more, the last one more than 90 days ago |
//!
//! A customer can be in several segments (a VIP is also a repeat customer) or in none (no purchases yet).

/// One customer segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    New,
    Repeat,
    Vip,
    AtRisk,
}

/// What makes a customer a VIP: total spent, or number of purchases.
pub const VIP_MIN_SPENT: i64 = 2000;
pub const VIP_MIN_ORDERS: i64 = 5;
/// Days without a purchase after which a repeat customer is at risk.
pub const AT_RISK_AFTER_DAYS: i64 = 90;
/// Days within which a first purchase makes a customer new.
pub const NEW_WITHIN_DAYS: i64 = 30;

impl Segment {
    pub const ALL: [Segment; 4] = [Self::New, Self::Repeat, Self::Vip, Self::AtRisk];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Repeat => "repeat",
            Self::Vip => "vip",
            Self::AtRisk => "at_risk",
        }
    }

    /// The SQL condition over the customers listing's aggregate `a` (see `customers::SELECT`). Literals only
    /// (the constants above, spelled out because `concat!` takes literals; a test checks they agree).
    pub fn condition(self) -> &'static str {
        match self {
            Self::New => "(a.orders_count = 1 AND a.last_order_at >= now() - interval '30 days')",
            Self::Repeat => "(a.orders_count >= 2)",
            Self::Vip => "(COALESCE(a.total_spent, 0) >= 2000 OR a.orders_count >= 5)",
            Self::AtRisk => {
                "(a.orders_count >= 2 AND a.last_order_at < now() - interval '90 days')"
            }
        }
    }

    /// Which segments a customer with these aggregates is in (for badges), by the same rules.
    pub fn of(
        orders_count: i64,
        total_spent: rust_decimal::Decimal,
        last_order_at: Option<time::OffsetDateTime>,
    ) -> Vec<Segment> {
        let now = time::OffsetDateTime::now_utc();
        let days_since = last_order_at.map(|at| (now - at).whole_days());
        let mut segments = Vec::new();
        if orders_count == 1 && days_since.is_some_and(|d| d < NEW_WITHIN_DAYS) {
            segments.push(Self::New);
        }
        if orders_count >= 2 {
            segments.push(Self::Repeat);
        }
        if total_spent >= rust_decimal::Decimal::from(VIP_MIN_SPENT)
            || orders_count >= VIP_MIN_ORDERS
        {
            segments.push(Self::Vip);
        }
        if orders_count >= 2 && days_since.is_some_and(|d| d >= AT_RISK_AFTER_DAYS) {
            segments.push(Self::AtRisk);
        }
        segments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_spells_out_the_constants() {
        assert!(
            Segment::New
                .condition()
                .contains(&format!("'{NEW_WITHIN_DAYS} days'"))
        );
        assert!(
            Segment::AtRisk
                .condition()
                .contains(&format!("'{AT_RISK_AFTER_DAYS} days'"))
        );
        assert!(
            Segment::Vip
                .condition()
                .contains(&format!(">= {VIP_MIN_SPENT}"))
        );
        assert!(
            Segment::Vip
                .condition()
                .contains(&format!(">= {VIP_MIN_ORDERS}"))
        );
        for segment in Segment::ALL {
            assert_eq!(Segment::parse(segment.name()), Some(segment));
        }
        assert_eq!(Segment::parse("whales"), None);
    }

    #[test]
    fn badges_follow_the_rules() {
        let now = time::OffsetDateTime::now_utc();
        let d = |days| Some(now - time::Duration::days(days));
        let dec = rust_decimal::Decimal::from;
        assert_eq!(Segment::of(1, dec(10), d(3)), vec![Segment::New]);
        assert_eq!(Segment::of(1, dec(10), d(40)), vec![]);
        assert_eq!(Segment::of(2, dec(10), d(3)), vec![Segment::Repeat]);
        assert_eq!(
            Segment::of(5, dec(10), d(100)),
            vec![Segment::Repeat, Segment::Vip, Segment::AtRisk]
        );
        assert_eq!(Segment::of(1, dec(2000), d(100)), vec![Segment::Vip]);
    }
}
