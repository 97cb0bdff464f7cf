//! Reading the target back: the SPEC 5.1 materialisation rule and comparison with the
//! source. `pgcdc validate` (SPEC 6), the demo and the tests are built on it.

pub mod compare;
pub mod identity;
pub mod materialize;
pub mod run;
mod waiting;
