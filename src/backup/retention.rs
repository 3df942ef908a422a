//! Which backup sets to keep: grandfather-father-son over the finished sets, decided by a pure function so
//! the policy is tested without storage. The newest set of each of the `daily` most recent days that have a
//! set is kept, likewise per ISO week (`weekly`) and per month (`monthly`); the newest set is always kept.

use std::collections::BTreeSet;

use time::OffsetDateTime;

use crate::config::RetentionConfig;

/// A period a set falls in: (year, day / ISO week / month).
type Bucket = fn(&OffsetDateTime) -> (i32, u32);

fn utc(at: &OffsetDateTime) -> OffsetDateTime {
    at.to_offset(time::UtcOffset::UTC)
}

/// The ids of `sets` (id, start time) to keep under `policy`; every other one may be pruned.
pub fn keep(sets: &[(String, OffsetDateTime)], policy: &RetentionConfig) -> BTreeSet<String> {
    let mut newest_first: Vec<&(String, OffsetDateTime)> = sets.iter().collect();
    newest_first.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    let mut kept = BTreeSet::new();
    if let Some((id, _)) = newest_first.first() {
        kept.insert(id.clone());
    }
    let buckets: [(u32, Bucket); 3] = [
        (policy.daily, |at| {
            (utc(at).year(), utc(at).ordinal() as u32)
        }),
        (policy.weekly, |at| {
            let (year, week, _) = utc(at).to_iso_week_date();
            (year, week as u32)
        }),
        (policy.monthly, |at| {
            (utc(at).year(), utc(at).month() as u32)
        }),
    ];
    for (count, bucket) in buckets {
        let mut seen = BTreeSet::new();
        for (id, at) in &newest_first {
            if seen.len() as u32 >= count {
                break;
            }
            if seen.insert(bucket(at)) {
                kept.insert(id.clone());
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: i64) -> OffsetDateTime {
        // 2026-01-01 (a Thursday) 02:00 UTC plus n days.
        time::PrimitiveDateTime::new(
            time::Date::from_calendar_date(2026, time::Month::January, 1).unwrap(),
            time::Time::from_hms(2, 0, 0).unwrap(),
        )
        .assume_utc()
            + time::Duration::days(n)
    }

    fn sets(days: impl IntoIterator<Item = i64>) -> Vec<(String, OffsetDateTime)> {
        days.into_iter()
            .map(|d| (format!("d{d:03}"), day(d)))
            .collect()
    }

    fn policy(daily: u32, weekly: u32, monthly: u32) -> RetentionConfig {
        RetentionConfig {
            daily,
            weekly,
            monthly,
        }
    }

    #[test]
    fn a_year_of_daily_sets_keeps_7_daily_4_weekly_6_monthly() {
        let all = sets(0..365);
        let kept = keep(&all, &policy(7, 4, 6));
        // The last 7 days…
        for d in 358..365 {
            assert!(kept.contains(&format!("d{d:03}")), "day {d}");
        }
        // …the newest set of each of the last 4 ISO weeks (Sundays, and the partial current week)…
        // …and of each of the last 6 months (month ends).
        for month_end in ["d364", "d333", "d303", "d272", "d242", "d211"] {
            assert!(kept.contains(month_end), "{month_end} in {kept:?}");
        }
        assert!(!kept.contains("d100"));
        // Overlaps collapse: at most 7 + 4 + 6, at least 7 + 6 - overlap.
        assert!(kept.len() <= 17 && kept.len() >= 11, "{kept:?}");
    }

    #[test]
    fn several_sets_a_day_keep_the_newest_of_the_day() {
        let mut all = sets([10, 11]);
        all.push(("d011-early".into(), day(11) - time::Duration::hours(1)));
        let kept = keep(&all, &policy(2, 0, 0));
        assert_eq!(
            kept,
            ["d010", "d011"].map(String::from).into_iter().collect()
        );
    }

    #[test]
    fn the_newest_set_is_always_kept_and_gaps_do_not_count() {
        assert_eq!(keep(&sets([5]), &policy(0, 0, 1)).len(), 1);
        // Days without a set do not use up the daily allowance.
        let kept = keep(&sets([1, 50, 100]), &policy(3, 0, 0));
        assert_eq!(kept.len(), 3);
        assert!(keep(&[], &policy(7, 4, 6)).is_empty());
    }
}
