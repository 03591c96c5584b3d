//! The documentation's example config is valid and complete.

use std::path::Path;

#[test]
fn example_config_parses_and_round_trips() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/example.toml");
    let cfg = lbd::config::parse_file(&path).unwrap_or_else(|e| {
        panic!("docs/example.toml is invalid:\n{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))
    });
    assert_eq!(cfg.services.len(), 5);
    let again = lbd::config::parse(&cfg.to_toml(), "roundtrip.toml").unwrap();
    assert_eq!(cfg, again);
    // lbd compacts a large config through JSON after parsing it: every field
    // must survive (a field serde skipped would silently vanish on a box).
    let json = serde_json::to_vec(&cfg).unwrap();
    let back: lbd::config::Config = serde_json::from_slice(&json).unwrap();
    assert_eq!(cfg, back);
}

#[test]
fn every_key_in_the_example_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let example = std::fs::read_to_string(root.join("example.toml")).unwrap();
    let reference = std::fs::read_to_string(root.join("config.md")).unwrap();
    for line in example.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('[') || !line.contains('=') {
            continue;
        }
        let key = line.split('=').next().unwrap().trim();
        assert!(reference.contains(&format!("`{key}`")), "key `{key}` of example.toml is not in docs/config.md");
    }
}
