use super::*;

/// Kilosort4 4.1.7's parameter names (spec §1.1 and §1.2).
const KILOSORT4_PARAMETERS: &[&str] = &[
    "n_chan_bin",
    "fs",
    "batch_size",
    "nblocks",
    "Th_universal",
    "Th_learned",
    "tmin",
    "tmax",
    "nt",
    "shift",
    "scale",
    "batch_downsampling",
    "artifact_threshold",
    "nskip",
    "whitening_range",
    "highpass_cutoff",
    "binning_depth",
    "sig_interp",
    "drift_smoothing",
    "nt0min",
    "dmin",
    "dminx",
    "min_template_size",
    "template_sizes",
    "nearest_chans",
    "nearest_templates",
    "max_channel_distance",
    "max_peels",
    "templates_from_data",
    "n_templates",
    "n_pcs",
    "Th_single_ch",
    "acg_threshold",
    "ccg_threshold",
    "cluster_neighbors",
    "cluster_downsampling",
    "max_cluster_subset",
    "x_centers",
    "cluster_init_seed",
    "duplicate_spike_ms",
    "position_limit",
];

#[test]
fn table_and_struct_have_the_same_fields() {
    let fields: Vec<&str> = Settings::default().to_values().into_iter().map(|(k, _)| k).collect();
    let rows: Vec<&str> = PARAMETERS.iter().map(|p| p.name).collect();
    assert_eq!(fields, rows);
    let mut unique = rows.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), rows.len(), "duplicate names in the table");
    for name in KILOSORT4_PARAMETERS {
        assert!(rows.contains(name), "Kilosort4 parameter {name} has no row");
    }
    for p in PARAMETERS {
        assert!(!p.help.trim().is_empty(), "{} has no help", p.name);
        assert!(p.min <= p.max, "{} has min > max", p.name);
    }
}

#[test]
fn every_default_passes_its_own_row() {
    let s = Settings { n_chan_bin: Some(385), ..Settings::default() };
    s.validate("defaults").unwrap();
}

#[test]
fn defaults_mirror_kilosort4() {
    let s = Settings::default();
    assert_eq!((s.fs, s.batch_size, s.nblocks, s.nt, s.trough_index()), (30000.0, 60000, 1, 61, 20));
    assert_eq!((s.th_universal, s.th_learned, s.th_single_ch), (9.0, 8.0, 6.0));
    assert_eq!((s.nskip, s.whitening_range, s.highpass_cutoff), (25, 32, 300.0));
    assert_eq!((s.binning_depth, s.sig_interp, s.drift_smoothing), (5.0, 20.0, [0.5; 3]));
    assert_eq!((s.dminx, s.min_template_size, s.template_sizes, s.nearest_chans), (32.0, 10.0, 5, 10));
    assert_eq!((s.nearest_templates, s.max_channel_distance, s.max_peels), (100, Some(32.0), 100));
    assert_eq!((s.n_templates, s.n_pcs, s.acg_threshold, s.ccg_threshold), (6, 6, 0.2, 0.25));
    assert_eq!((s.cluster_neighbors, s.cluster_downsampling, s.max_cluster_subset), (10, 20, Some(25000)));
    assert_eq!((s.x_centers, s.cluster_init_seed, s.duplicate_spike_ms, s.position_limit), (None, 5, 0.25, 100.0));
    assert!(s.tmax.is_infinite() && s.artifact_threshold.is_infinite() && s.templates_from_data && s.do_car);
}

#[test]
fn python_json_dump_of_settings_loads() {
    // What `json.dump({**DEFAULT_SETTINGS, 'n_chan_bin': 385, 'nblocks': 5})` writes.
    let text = r#"{"n_chan_bin": 385, "fs": 30000, "batch_size": 60000, "nblocks": 5, "Th_universal": 9,
        "Th_learned": 8, "tmin": 0, "tmax": Infinity, "nt": 61, "shift": null, "scale": null,
        "artifact_threshold": Infinity, "drift_smoothing": [0.5, 0.5, 0.5], "dmin": null,
        "max_cluster_subset": 25000, "duplicate_spike_bins": 7, "templates_from_data": true}"#;
    let entries = value::parse_json_object(text).unwrap();
    let mut s = Settings::default();
    s.apply(&entries, "test").unwrap();
    assert_eq!(s.n_chan_bin, Some(385));
    assert_eq!(s.nblocks, 5);
    assert!(s.tmax.is_infinite());
    let expected = Settings { n_chan_bin: Some(385), nblocks: 5, ..Settings::default() };
    assert_eq!(s, expected);
}

#[test]
fn json_written_by_us_loads_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let s = Settings {
        n_chan_bin: Some(64),
        shift: Some(-3.5),
        bad_channels: vec![3, 7],
        filename: vec!["a.bin".into(), "b.bin".into()],
        ..Settings::default()
    };
    let path = dir.path().join("settings.json");
    std::fs::write(&path, s.to_json()).unwrap();
    assert_eq!(Settings::from_file(&path).unwrap(), s);
}

#[test]
fn toml_settings_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, "n_chan_bin = 32\nTh_universal = 10.5\ntmax = inf\ndmin = 20\n").unwrap();
    let s = Settings::from_file(&path).unwrap();
    assert_eq!((s.n_chan_bin, s.th_universal, s.dmin), (Some(32), 10.5, Some(20.0)));
}

#[test]
fn unknown_keys_are_listed_with_their_nearest_name() {
    let mut s = Settings::default();
    let entries = vec![("nblock".to_string(), Value::Int(3)), ("zzzzzzzzzzzz".to_string(), Value::Int(1))];
    let msg = s.apply(&entries, "my_settings.json").unwrap_err().to_string();
    assert!(msg.contains("my_settings.json"), "{msg}");
    assert!(msg.contains("`nblock` (did you mean `nblocks`?)"), "{msg}");
    assert!(msg.contains("`zzzzzzzzzzzz`") && !msg.contains("zzzzzzzzzzzz` (did"), "{msg}");
    assert_eq!(nearest_name("th_universal").as_deref(), Some("Th_universal"));
}

#[test]
fn wrong_types_name_the_setting_and_value() {
    let mut s = Settings::default();
    let msg = s.apply(&[("nblocks".into(), Value::Text("five".into()))], "cli").unwrap_err().to_string();
    assert!(msg.contains("nblocks") && msg.contains("five") && msg.contains("whole number"), "{msg}");
    let msg = s.apply(&[("data_dtype".into(), Value::Text("int8".into()))], "cli").unwrap_err().to_string();
    assert!(msg.contains("int8") && msg.contains("int16, uint16, int32, float32"), "{msg}");
}

#[test]
fn even_nt_is_rejected_with_the_fix() {
    let mut s = Settings { n_chan_bin: Some(4), nt: 60, ..Settings::default() };
    let msg = s.validate("settings.json").unwrap_err().to_string();
    assert!(msg.contains("`nt` = 60") && msg.contains("odd"), "{msg}");
    s.nt = 61;
    s.validate("settings.json").unwrap();
}

#[test]
fn missing_n_chan_bin_says_how_to_give_it() {
    let msg = Settings::default().validate("cli").unwrap_err().to_string();
    assert!(msg.contains("n_chan_bin") && msg.contains("--n-chan-bin"), "{msg}");
}

#[test]
fn out_of_range_values_are_rejected() {
    let base = Settings { n_chan_bin: Some(4), ..Settings::default() };
    let cases: Vec<(Settings, &str)> = vec![
        (Settings { th_universal: 0.0, ..base.clone() }, "Th_universal"),
        (Settings { max_peels: 20000, ..base.clone() }, "max_peels"),
        (Settings { cluster_neighbors: 1, ..base.clone() }, "cluster_neighbors"),
        (Settings { fs: -1.0, ..base.clone() }, "fs"),
        (Settings { drift_smoothing: [0.5, -1.0, 0.5], ..base.clone() }, "drift_smoothing"),
        (Settings { tmin: 5.0, tmax: 2.0, ..base.clone() }, "tmax"),
    ];
    for (s, name) in cases {
        let msg = s.validate("x").unwrap_err().to_string();
        assert!(msg.contains(&format!("`{name}`")), "{name}: {msg}");
    }
}

#[test]
fn changed_from_default_lists_only_changes() {
    let s = Settings { nblocks: 5, n_chan_bin: Some(385), ..Settings::default() };
    let names: Vec<&str> = s.changed_from_default().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["n_chan_bin", "nblocks"]);
}

#[test]
fn builtin_templates_need_their_nt_and_n_pcs() {
    let base = Settings { n_chan_bin: Some(4), templates_from_data: false, ..Settings::default() };
    base.validate("settings.json").unwrap();
    let msg = Settings { nt: 81, ..base.clone() }.validate("settings.json").unwrap_err().to_string();
    assert!(msg.contains("`nt` = 81") && msg.contains("nt = 61") && msg.contains("templates_from_data"), "{msg}");
    let msg = Settings { n_pcs: 3, ..base.clone() }.validate("settings.json").unwrap_err().to_string();
    assert!(msg.contains("`n_pcs` = 3") && msg.contains("n_pcs = 6") && msg.contains("templates_from_data"), "{msg}");
    // Kilosort4 ignores n_templates with its stored set; so do we.
    Settings { n_templates: 4, ..base.clone() }.validate("settings.json").unwrap();
    // Learning from the data has no such limits.
    Settings { nt: 81, n_pcs: 3, templates_from_data: true, ..base }.validate("settings.json").unwrap();
}
