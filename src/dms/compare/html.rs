//! The HTML report of `pgcdc dms compare --format html`.

use super::Report;

pub fn render(r: &Report) -> String {
    super::text::render(r)
}
