//! The Markdown report of `pgcdc dms compare --format markdown`.

use super::Report;

pub fn render(r: &Report) -> String {
    super::text::render(r)
}
