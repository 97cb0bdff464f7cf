//! DMS-JSON records (SPEC 5.3): being built.
