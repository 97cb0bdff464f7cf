//! Operations on the source and the target behind `check`, `setup`, `status` and
//! `teardown`. They return reports; the CLI presents them.

pub mod check;
mod check_rules;
mod check_server;
mod check_types;
pub mod setup;
mod setup_rules;
pub mod status;

use crate::error::Result;
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;
use crate::source::sql;

pub async fn connect_catalog(info: &ConnInfo) -> Result<Catalog> {
    Ok(Catalog::new(sql::connect(info).await?))
}
