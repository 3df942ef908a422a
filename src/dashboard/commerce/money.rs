//! `Money`: an amount of a `numeric(14,2)` column, answered as a decimal string with at least two
//! decimals (`"175.47"`, `"0.00"`). Strings, because JSON numbers are floats to most clients; the padding,
//! because sqlx decodes a numeric zero without its scale.

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use super::paging::Key;

#[derive(Debug, Clone, Copy, PartialEq, sqlx::Type)]
#[sqlx(transparent)]
pub struct Money(Decimal);

impl Money {
    pub fn new(amount: Decimal) -> Self {
        Self(amount)
    }

    pub fn amount(self) -> Decimal {
        self.0
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut amount = self.0;
        if amount.scale() < 2 {
            amount.rescale(2);
        }
        serializer.collect_str(&amount)
    }
}

impl From<Money> for Key {
    fn from(value: Money) -> Self {
        Self::Amount(value.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_have_at_least_cents() {
        let json = |amount: Decimal| serde_json::to_string(&Money(amount)).unwrap();
        assert_eq!(json(Decimal::ZERO), "\"0.00\"");
        assert_eq!(json(Decimal::new(17547, 2)), "\"175.47\"");
        assert_eq!(json(Decimal::new(5, 0)), "\"5.00\"");
        assert_eq!(json(Decimal::new(-12345, 3)), "\"-12.345\"");
    }
}
