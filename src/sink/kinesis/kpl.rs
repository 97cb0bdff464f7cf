//! KPL aggregation (SPEC 5.3): being built.
