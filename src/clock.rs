//! The process clock. `SAFEREACH_CLOCK` (tests only) starts it at a given time; it then runs on
//! in real time, so deferrals and timeouts still behave.

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    offset: TimeDelta,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The clock of this process: from `SAFEREACH_CLOCK` (`Config::clock`) when set, with a
    /// warning, else the system's.
    pub fn configured(start: Option<DateTime<Utc>>) -> Clock {
        match start {
            Some(start) => {
                tracing::warn!(start = %crate::time::rfc3339(start), "SAFEREACH_CLOCK is set: the clock is shifted (tests only)");
                Clock::starting_at(start)
            }
            None => Clock::system(),
        }
    }

    /// A clock that reads `start` now and runs on from there.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock { offset: start - Utc::now() }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    pub fn is_shifted(&self) -> bool {
        self.offset != TimeDelta::zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_clock_reads_its_start_and_runs_on() {
        let start: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let clock = Clock::starting_at(start);
        let first = clock.now();
        assert!((first - start).num_seconds().abs() < 2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(clock.now() > first);
        assert!(clock.is_shifted() && !Clock::system().is_shifted());
    }
}
