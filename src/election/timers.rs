//! RFC 5798 §6.1 timer arithmetic, in centiseconds exactly as the RFC states
//! it (integer division included), converted to `Duration` only at the end.

use std::time::Duration;

use crate::wire::Centis;

/// Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256 (§6.1),
/// with RFC 9568's note that the result is in centiseconds.
pub fn skew_time(priority: u8, master_adver_interval: Centis) -> Duration {
    let centis = ((256 - u32::from(priority)) * u32::from(master_adver_interval.0)) / 256;
    Duration::from_millis(u64::from(centis) * 10)
}

/// Master_Down_Interval = (3 * Master_Adver_Interval) + Skew_Time (§6.1).
pub fn master_down_interval(priority: u8, master_adver_interval: Centis) -> Duration {
    master_adver_interval.to_duration() * 3 + skew_time(priority, master_adver_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_time_follows_rfc_5798_section_6_1() {
        // priority 100, interval 1 s: (156 * 100) / 256 = 60 cs (integer division).
        assert_eq!(skew_time(100, Centis(100)), Duration::from_millis(600));
        // priority 255 waits the least: (1 * 100) / 256 = 0 cs.
        assert_eq!(skew_time(255, Centis(100)), Duration::ZERO);
        // priority 1: (255 * 100) / 256 = 99 cs.
        assert_eq!(skew_time(1, Centis(100)), Duration::from_millis(990));
    }

    #[test]
    fn master_down_interval_is_three_intervals_plus_skew() {
        assert_eq!(
            master_down_interval(100, Centis(100)),
            Duration::from_millis(3600)
        );
        // 20 ms adverts: 3 * 2 cs + (156 * 2) / 256 = 6 + 1 cs.
        assert_eq!(
            master_down_interval(100, Centis(2)),
            Duration::from_millis(70)
        );
    }
}
