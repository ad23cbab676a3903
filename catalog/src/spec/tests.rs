//! The catalog format's tests.

use std::path::Path;
use std::time::Duration;

use super::*;

const GOOD: &str = r#"
[catalog]
root = "."

[[datasets]]
name = "traffic.segment_speed"
location = "traffic/segment_speed/"
owner = "traffic"
classification = "internal"
update_frequency = "5 minutes"
partitions = [{ name = "dt", type = "date" }]
sort_order = ["observed_at"]

[[datasets.columns]]
name = "observed_at"
type = "timestamp"
description = "interval start"

[[datasets.columns]]
name = "plate"
type = "text"
pii = "plate"
"#;

fn parse(text: &str) -> Result<CatalogSpec> {
    CatalogSpec::from_toml(text, Path::new("/lake/catalog.toml"))
}

/// The message of a parse error, which must name the file.
fn error(text: &str) -> String {
    let msg = parse(text).unwrap_err().to_string();
    assert!(msg.contains("/lake/catalog.toml"), "{msg}");
    msg
}

#[test]
fn parses_a_valid_catalog() {
    let spec = parse(GOOD).unwrap();
    assert_eq!(spec.catalog.name, "city");
    let ds = &spec.datasets[0];
    assert_eq!(
        (ds.schema_name(), ds.table_name()),
        ("traffic", "segment_speed")
    );
    assert_eq!(
        ds.partition_types(),
        vec![("dt".to_string(), ColumnType::Date)]
    );
    assert_eq!(ds.columns[1].pii, Some(PiiTag::Plate));
    assert!(ds.declared_types().is_some());
}

#[test]
fn round_trips_through_toml() {
    let spec = parse(GOOD).unwrap();
    assert_eq!(parse(&spec.to_toml().unwrap()).unwrap(), spec);
}

#[test]
fn syntax_error_names_the_line() {
    let msg = error("[catalog]\nroot = \n");
    assert!(
        msg.contains("TOML syntax error") && msg.contains("line 2"),
        "{msg}"
    );
}

#[test]
fn unknown_field_names_dataset_and_field() {
    let msg = error(&GOOD.replace("owner = \"traffic\"", "owner = \"traffic\"\nowners = \"x\""));
    assert!(msg.contains("dataset `traffic.segment_speed`"), "{msg}");
    assert!(
        msg.contains("field `owners`") && msg.contains("unknown field"),
        "{msg}"
    );
}

#[test]
fn missing_location_names_dataset_and_field() {
    let msg = error(&GOOD.replace("location = \"traffic/segment_speed/\"\n", ""));
    assert!(
        msg.contains("dataset `traffic.segment_speed`: `location`"),
        "{msg}"
    );
}

#[test]
fn every_missing_field_is_reported_at_once() {
    let text = "[catalog]\nname = \"city\"\n\n[[datasets]]\nname = \"a.b\"\n\n[[datasets]]\nowner = \"x\"\n\n[[datasets]]\nname = \"c.d\"\nlocation = \"c/\"\n\n[[views]]\nsql = \"SELECT 1\"\n";
    let msg = error(text);
    for expected in [
        "required fields are missing",
        "`[catalog]`: `root`",
        "dataset `a.b`: `location`",
        "dataset #2 of the `[[datasets]]`: `name`, `location`",
        "view #1",
    ] {
        assert!(msg.contains(expected), "{expected}: {msg}");
    }
    assert!(!msg.contains("c.d"), "{msg}");
}

#[test]
fn wrong_partition_type_is_refused() {
    // a type that does not exist
    let msg = error(&GOOD.replace("type = \"date\"", "type = \"dat\""));
    assert!(
        msg.contains("partitions[0].type") && msg.contains("unknown type `dat`"),
        "{msg}"
    );
    // a type that cannot be spelled in a path
    let msg = error(&GOOD.replace("type = \"date\"", "type = \"double\""));
    assert!(msg.contains("cannot be a partition column type"), "{msg}");
}

#[test]
fn bad_enum_values_name_their_field() {
    let msg = error(&GOOD.replace("\"internal\"", "\"secret\""));
    assert!(
        msg.contains("field `classification`") && msg.contains("unknown variant"),
        "{msg}"
    );
    let msg = error(&GOOD.replace("pii = \"plate\"", "pii = \"shoe_size\""));
    assert!(msg.contains("columns[1].pii"), "{msg}");
}

#[test]
fn semantic_errors() {
    // not schema.table
    assert!(
        error(&GOOD.replace("traffic.segment_speed", "segment_speed")).contains("field `name`")
    );
    // escaping the root
    assert!(
        error(&GOOD.replace("traffic/segment_speed/", "../elsewhere/"))
            .contains("field `location`")
    );
    // reserved schema
    assert!(error(&GOOD.replace("traffic.segment_speed", "system.x")).contains("reserved"));
    // unparseable frequency
    assert!(error(&GOOD.replace("5 minutes", "now and then")).contains("update_frequency"));
    // sort order on an undeclared column
    assert!(error(&GOOD.replace("[\"observed_at\"]", "[\"nope\"]")).contains("sort_order[0]"));
    // declared twice
    let twice = format!("{GOOD}{}", &GOOD[GOOD.find("[[datasets]]").unwrap()..]);
    assert!(error(&twice).contains("declared twice"));
    // no [catalog]
    assert!(error("[[datasets]]\nname = \"a.b\"\n").contains("the `[catalog]` section"));
}

#[test]
fn quality_declarations_are_validated() {
    let with = |dataset: &str, column: &str| {
        GOOD.replace(
            "sort_order = [\"observed_at\"]",
            &format!("sort_order = [\"observed_at\"]\n{dataset}"),
        )
        .replace(
            "description = \"interval start\"",
            &format!("description = \"interval start\"\n{column}"),
        )
    };
    let ok = parse(&with(
        "primary_key = [\"plate\", \"observed_at\"]\ntime_column = \"observed_at\"",
        "required = true",
    ))
    .unwrap();
    assert_eq!(ok.datasets[0].primary_key.len(), 2);
    assert!(ok.datasets[0].columns[0].required);
    assert!(
        error(&with("primary_key = [\"nope\"]", "")).contains("field `primary_key[0]`: `nope`")
    );
    assert!(error(&with("time_column = \"nope\"", "")).contains("field `time_column`"));
    assert!(error(&with("", "min = 5\nmax = 1")).contains("5 is above max 1"));
    assert!(error(&with("partition_tolerance = 0", "")).contains("positive number"));
    let quality = |section: &str| format!("{GOOD}\n[quality]\n{section}\n");
    let q = parse(&quality(
        "as_of = \"2026-01-01\"\npartition_tolerance = 0.25",
    ))
    .unwrap();
    assert_eq!(q.quality.unwrap().as_of.as_deref(), Some("2026-01-01"));
    assert!(error(&quality("as_of = \"soon\"")).contains("field `quality.as_of`"));
    assert!(error(&quality("tolerance = 1")).contains("quality.tolerance"));
    assert_eq!(
        parse_local_time("2026-01-01 08:30:00").unwrap().to_string(),
        "2026-01-01 08:30:00"
    );
}

#[test]
fn update_frequencies() {
    assert_eq!(parse_update_frequency("static").unwrap(), None);
    assert_eq!(
        parse_update_frequency("5 minutes").unwrap(),
        Some(Duration::from_secs(300))
    );
    assert_eq!(
        parse_update_frequency("daily").unwrap(),
        Some(Duration::from_secs(86_400))
    );
    assert!(parse_update_frequency("0 days").is_err());
}

#[test]
fn roots_resolve_against_the_catalog_file() {
    assert_eq!(
        resolve_root(".", Path::new("/lake/catalog.toml")).unwrap(),
        "file:///lake/"
    );
    assert_eq!(
        resolve_root("data", Path::new("/lake/catalog.toml")).unwrap(),
        "file:///lake/data/"
    );
    assert_eq!(
        resolve_root("s3://bucket/prefix", Path::new("/x")).unwrap(),
        "s3://bucket/prefix/"
    );
    assert!(resolve_root("s3://bad host/", Path::new("/x")).is_err());
    let remote = Path::new("s3://lake/city/catalog.toml");
    assert_eq!(resolve_root(".", remote).unwrap(), "s3://lake/city/");
    assert_eq!(
        resolve_root("data", remote).unwrap(),
        "s3://lake/city/data/"
    );
    assert!(resolve_root("/abs", remote).is_err());
}

#[test]
fn views_are_validated() {
    let with = |view: &str| format!("{GOOD}\n[[views]]\n{view}\n");
    let spec = parse(&with("name = \"situation.daily\"\nsql = \"SELECT 1\"")).unwrap();
    assert_eq!(spec.views[0].view_name(), "daily");
    assert_eq!(
        spec.view_only_schema_names()
            .into_iter()
            .collect::<Vec<_>>(),
        ["situation"]
    );
    assert_eq!(parse(&spec.to_toml().unwrap()).unwrap(), spec);
    for (view, needle) in [
        (
            "name = \"daily\"\nsql = \"SELECT 1\"",
            "field `views[daily].name`: must be `schema.view`",
        ),
        (
            "name = \"s.v\"",
            "give exactly one of `sql` (the query) and `file`",
        ),
        (
            "name = \"s.v\"\nsql = \"SELECT 1\"\nfile = \"v.sql\"",
            "give exactly one of",
        ),
        (
            "name = \"s.v\"\nfile = \"../v.sql\"",
            "must be a path relative to the catalog file",
        ),
        (
            "name = \"traffic.segment_speed\"\nsql = \"SELECT 1\"",
            "is already declared",
        ),
        (
            "name = \"system.v\"\nsql = \"SELECT 1\"",
            "schema `system` is reserved",
        ),
        (
            "name = \"s.v\"\nquery = \"SELECT 1\"",
            "unknown field `query`",
        ),
    ] {
        let msg = error(&with(view));
        assert!(msg.contains(needle), "{view}: {msg}");
    }
}

#[test]
fn storage_settings_never_hold_credentials() {
    let spec = parse(&format!(
        "{GOOD}\n[storage]\nendpoint = \"http://127.0.0.1:8333\"\nallow_http = true\npath_style = true\n"
    ))
    .unwrap();
    assert_eq!(spec.storage.unwrap().allow_http, Some(true));
    let msg = error(&format!("{GOOD}\n[storage]\nsecret_access_key = \"x\"\n"));
    assert!(
        msg.contains("credentials are never stored in the catalog"),
        "{msg}"
    );
    let msg = error(&format!("{GOOD}\n[storage]\nbucket = \"x\"\n"));
    assert!(msg.contains("unknown field `bucket`"), "{msg}");
}

#[test]
fn evaluation_settings_are_validated() {
    let spec = parse(&format!("{GOOD}\n[evaluation]\ngrade_excellent = 85\n")).unwrap();
    assert_eq!(spec.evaluation.unwrap().grade_excellent, Some(85.0));
    for (section, needle) in [
        ("grade_good = 95", "the grade bands must decrease"),
        (
            "grade_fair = -1",
            "field `evaluation.grade_fair`: -1 is not a score",
        ),
        (
            "over_completion_threshold = 0.5",
            "must be a ratio of at least 1",
        ),
        ("grade_best = 1", "unknown field `grade_best`"),
    ] {
        let msg = error(&format!("{GOOD}\n[evaluation]\n{section}\n"));
        assert!(msg.contains(needle), "{section}: {msg}");
    }
}

/// A dataset that leaves out owner, classification and update frequency gets
/// `unassigned`, `restricted` (fail closed: nobody classified it) and `static`.
#[test]
fn governance_fields_default_closed() {
    let text = GOOD
        .replace("owner = \"traffic\"\n", "")
        .replace("classification = \"internal\"\n", "")
        .replace("update_frequency = \"5 minutes\"\n", "");
    let spec = parse(&text).unwrap();
    let ds = &spec.datasets[0];
    assert_eq!(ds.owner, "unassigned");
    assert_eq!(ds.classification, Classification::Restricted);
    assert_eq!(ds.update_frequency, "static");
}

#[test]
fn money_is_grouped_by_thousands_in_the_chosen_unit() {
    assert_eq!(thousands(1_234_567.891, 2), "1,234,567.89");
    assert_eq!(thousands(999.0, 0), "999");
    assert_eq!(thousands(-1_000.0, 0), "-1,000");
    assert_eq!(thousands(-0.001, 2), "0.00");
    assert_eq!(MoneyUnit::WanYuan.format(123_456_789.0), "12,345.68");
    assert_eq!(MoneyUnit::Yuan.format(9_717.0), "9,717.00");
    let unit: EvaluationSection = toml::from_str("money_unit = \"万元\"").unwrap();
    assert_eq!(unit.money_unit, Some(MoneyUnit::WanYuan));
    let unit: EvaluationSection = toml::from_str("money_unit = \"yuan\"").unwrap();
    assert_eq!(unit.money_unit, Some(MoneyUnit::Yuan));
    assert!(toml::from_str::<EvaluationSection>("money_unit = \"dollars\"").is_err());
}

#[test]
fn evaluation_labels_name_codes_and_refuse_unknown_kinds() {
    let e: EvaluationSection = toml::from_str(
        "[labels.department]\ntransport = \"交通运输局\"\n[labels.level1]\ndecision = \"决策\"",
    )
    .unwrap();
    assert_eq!(e.labels.department["transport"], "交通运输局");
    assert_eq!(e.labels.level1["decision"], "决策");
    assert!(e.labels.level2.is_empty());
    // a misspelt kind is an error, not labels silently unused
    assert!(toml::from_str::<EvaluationSection>("[labels.departments]\nx = \"y\"").is_err());
    // written back only when there are some
    let empty = toml::to_string(&EvaluationSection::default()).unwrap();
    assert!(!empty.contains("labels"), "{empty}");
}
