//! Changes to Arrow record batches: PostgreSQL type mapping (SPEC 5.4) and per-table builders.
