//! The DMS companion (SPEC 7): `pgcdc dms plan` describes the AWS DMS task that does what a
//! configuration does ([`plan`]), `pgcdc dms apply` creates or updates it through the DMS
//! API ([`apply`]). Commands on top of the core: nothing outside this folder and the CLI imports it.
//!
//! [`names`] derives every DMS identifier from the configuration and [`target`] chooses the
//! sink the task mirrors; both are what `status` and `compare` use to find the same task.

pub mod apply;
pub mod cli;
pub mod compare;
pub mod names;
pub mod plan;
pub mod status;
pub mod target;
