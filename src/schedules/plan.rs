//! When a schedule fires: its cron expression read by `croner`, in its IANA zone
//! (`chrono-tz`), with the daylight-saving behaviour cron users expect (a fixed time in a
//! skipped hour runs once just after the gap; in a repeated hour, once).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};

use crate::error::{AppError, AppResult};

/// A parsed expression in its zone.
#[derive(Debug, Clone)]
pub struct Plan {
    cron: croner::Cron,
    zone: chrono_tz::Tz,
}

impl Plan {
    /// Reads `expression` (5 fields, or 6 with seconds first) in zone `zone`; an error names
    /// the field (`cron` or `timezone`) and says what is wrong.
    pub fn parse(expression: &str, zone: &str) -> AppResult<Plan> {
        let zone = chrono_tz::Tz::from_str(zone.trim()).map_err(|_| {
            AppError::invalid("timezone", format!("unknown time zone {zone:?} (an IANA name, e.g. Europe/Berlin)"))
        })?;
        let fields = expression.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(AppError::invalid(
                "cron",
                format!(
                    "{expression:?} has {fields} fields; give 5 (minute hour day month weekday) or 6 (seconds first)"
                ),
            ));
        }
        let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
        let cron = parser.parse(expression).map_err(|e| AppError::invalid("cron", format!("{expression:?}: {e}")))?;
        let plan = Plan { cron, zone };
        if plan.next_after(Utc::now()).is_none() {
            return Err(AppError::invalid("cron", format!("{expression:?} never fires")));
        }
        Ok(plan)
    }

    /// The first time strictly after `after` that the schedule fires.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.zone);
        self.cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    /// Every firing in `[from, to)`.
    fn firings(plan: &Plan, from: &str, to: &str) -> Vec<String> {
        let (mut now, end) = (at(from), at(to));
        let mut out = Vec::new();
        while let Some(next) = plan.next_after(now).filter(|n| *n < end) {
            out.push(next.to_rfc3339());
            now = next;
        }
        out
    }

    #[test]
    fn a_daily_time_in_a_skipped_hour_runs_once_just_after_the_gap() {
        // New York springs forward at 02:00 on 2026-03-08; 02:30 does not exist that day.
        let plan = Plan::parse("30 2 * * *", "America/New_York").unwrap();
        assert_eq!(
            firings(&plan, "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"),
            ["2026-03-07T07:30:00+00:00", "2026-03-08T07:00:00+00:00", "2026-03-09T06:30:00+00:00"],
            "02:30 EST, then 03:00 EDT (the first minute after the gap), then 02:30 EDT"
        );
        // Berlin springs forward at 02:00 on 2026-03-29.
        let plan = Plan::parse("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            firings(&plan, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"),
            ["2026-03-28T01:30:00+00:00", "2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"]
        );
    }

    #[test]
    fn a_daily_time_in_a_repeated_hour_runs_once() {
        // New York falls back at 02:00 on 2026-11-01: 01:30 happens twice.
        let plan = Plan::parse("30 1 * * *", "America/New_York").unwrap();
        assert_eq!(
            firings(&plan, "2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z"),
            ["2026-11-01T05:30:00+00:00", "2026-11-02T06:30:00+00:00"],
            "the first 01:30 (EDT) only"
        );
        // Berlin falls back at 03:00 on 2026-10-25: 02:30 happens twice.
        let plan = Plan::parse("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            firings(&plan, "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z"),
            ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
        );
    }

    #[test]
    fn intervals_keep_real_time_across_a_change() {
        // Every 30 minutes through Berlin's repeated hour (02:00-03:00 twice, 00:00Z-02:00Z):
        // each real half hour once, both passes of the hour included.
        let plan = Plan::parse("*/30 * * * *", "Europe/Berlin").unwrap();
        let seen = firings(&plan, "2026-10-24T23:59:00Z", "2026-10-25T02:00:00Z");
        assert_eq!(
            seen,
            [
                "2026-10-25T00:00:00+00:00",
                "2026-10-25T00:30:00+00:00",
                "2026-10-25T01:00:00+00:00",
                "2026-10-25T01:30:00+00:00"
            ]
        );
        let plan = Plan::parse("*/15 * * * * *", "UTC").unwrap();
        assert_eq!(firings(&plan, "2025-12-31T23:59:59Z", "2026-01-01T00:01:00Z").len(), 4, "6 fields: seconds first");
    }

    #[test]
    fn weekdays_at_nine_in_a_zone() {
        let plan = Plan::parse("0 9 * * 1-5", "Asia/Tokyo").unwrap();
        // Friday 2026-12-04 09:00 JST, then Monday 2026-12-07.
        assert_eq!(
            firings(&plan, "2026-12-03T12:00:00Z", "2026-12-07T12:00:00Z"),
            ["2026-12-04T00:00:00+00:00", "2026-12-07T00:00:00+00:00"]
        );
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_wrong() {
        let message = |e: AppError| e.to_string();
        assert!(
            message(Plan::parse("0 9 * * *", "Mars/Olympus").unwrap_err()).starts_with("timezone: unknown time zone")
        );
        assert!(message(Plan::parse("0 9 * *", "UTC").unwrap_err()).contains("has 4 fields"));
        assert!(message(Plan::parse("0 0 9 * * * 2027", "UTC").unwrap_err()).contains("has 7 fields"));
        assert!(message(Plan::parse("61 * * * *", "UTC").unwrap_err()).starts_with("cron: "));
        assert!(message(Plan::parse("0 0 30 2 *", "UTC").unwrap_err()).starts_with("cron: "), "February 30th");
    }
}
