//! Positions and times as PostgreSQL writes them: [`Lsn`] and [`PgTimestamp`].

use std::fmt;
use std::str::FromStr;

/// A PostgreSQL write-ahead-log position (`XLogRecPtr`).
///
/// Displayed as PostgreSQL does (`16/B374D848`); [`Lsn::file_hex`] gives the 16 upper-case
/// hex digits used in object names so that names sort in LSN order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const ZERO: Lsn = Lsn(0);

    /// 16 upper-case hex digits, zero padded: sorts like the LSN itself.
    pub fn file_hex(self) -> String {
        format!("{:016X}", self.0)
    }

    /// Parses the 16-hex-digit form written by [`Lsn::file_hex`].
    pub fn from_file_hex(s: &str) -> Option<Lsn> {
        if s.len() != 16 {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(Lsn)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Serialised as PostgreSQL writes LSNs (`"16/B374D848"`), so state files read naturally.
impl serde::Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for Lsn {
    type Err = String;
    /// Accepts PostgreSQL's `X/Y` form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (hi, lo) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not an LSN: expected the form 16/B374D848"))?;
        let bad = || format!("`{s}` is not an LSN: expected two hexadecimal numbers, as in 16/B374D848");
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn(((hi as u64) << 32) | lo as u64))
    }
}

/// Microseconds since the PostgreSQL epoch (2000-01-01 00:00:00 UTC), as on the wire.
pub type PgTimestamp = i64;

/// Seconds between the Unix epoch and the PostgreSQL epoch.
pub const PG_EPOCH_UNIX_SECS: i64 = 946_684_800;

/// Converts a PostgreSQL-epoch timestamp to microseconds since the Unix epoch.
pub fn pg_ts_to_unix_micros(ts: PgTimestamp) -> i64 {
    ts + PG_EPOCH_UNIX_SECS * 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips_both_forms() {
        let l: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert_eq!(l.file_hex(), "00000016B374D848");
        assert_eq!(Lsn::from_file_hex(&l.file_hex()), Some(l));
        assert!("16B374D848".parse::<Lsn>().is_err());
        assert!(Lsn(1).file_hex() < Lsn(0x10).file_hex());
    }
}
