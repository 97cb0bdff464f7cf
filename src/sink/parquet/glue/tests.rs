//! Where published keys belong in the catalog ([`super::place`]).

use super::*;

#[test]
fn native_keys_place_cdc_files_by_date_and_load_files_in_the_load_partition() {
    let p = place(
        "public/orders/cdc/date=2026-12-01/00000000016B3750-00000000016B3750.parquet",
        Layout::Native,
        false,
    )
    .unwrap();
    assert_eq!(p.table, "public_orders");
    assert_eq!(p.table_dir, "public/orders/cdc/");
    assert!(p.partitioned);
    assert_eq!(
        p.partition,
        Some((
            "2026-12-01".into(),
            "public/orders/cdc/date=2026-12-01/".into()
        ))
    );
    let p = place(
        "public/orders/load/00000000016B3750-00000.parquet",
        Layout::Native,
        false,
    )
    .unwrap();
    assert_eq!(
        p.partition,
        Some(("load".into(), "public/orders/load/".into()))
    );
    assert_eq!(place("_pgcdc/checkpoint.json", Layout::Native, false), None);
    assert_eq!(
        place("public/orders/_schema/1.json", Layout::Native, false),
        None
    );
    let p = place(
        "My%20Schema/Order%2DLines/cdc/date=2026-12-01/a.parquet",
        Layout::Native,
        false,
    )
    .unwrap();
    assert_eq!(p.table, "my_schema_order_lines");
}

#[test]
fn dms_keys_are_unpartitioned_unless_date_partitioning() {
    let p = place("public/orders/LOAD00000001.parquet", Layout::Dms, false).unwrap();
    assert_eq!(
        (p.table_dir.as_str(), p.partitioned, p.partition),
        ("public/orders/", false, None)
    );
    let p = place(
        "public/orders/20261201-101010123.parquet",
        Layout::Dms,
        false,
    )
    .unwrap();
    assert!(!p.partitioned);
    let p = place(
        "public/orders/2026/12/01/20261201-101010123.parquet",
        Layout::Dms,
        true,
    )
    .unwrap();
    assert_eq!(
        p.partition,
        Some(("2026-12-01".into(), "public/orders/2026/12/01/".into()))
    );
    let p = place("public/orders/LOAD00000001.parquet", Layout::Dms, true).unwrap();
    assert_eq!(p.partition, Some(("load".into(), "public/orders/".into())));
    assert_eq!(
        place("public/orders/20261201-101010123.csv", Layout::Dms, false),
        None
    );
}
