//! Golden tests: each config under configs/invalid/ is refused with exactly
//! the message in the `.expected` file beside it (file, line, key, fix).
//! Regenerate an expectation with `AIMASS_BLESS=1 cargo test --test invalid_configs`.

use aimass_tests::open_config;

#[tokio::test]
async fn each_invalid_config_gives_exactly_its_message() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/invalid");
    let mut checked = 0;
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
    {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let message = match open_config(&format!("configs/invalid/{name}")).await {
            Ok(_) => panic!("{name} was accepted"),
            Err(e) => e.to_string(),
        };
        let expected_path = path.with_extension("expected");
        if std::env::var_os("AIMASS_BLESS").is_some() {
            std::fs::write(&expected_path, format!("{message}\n")).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{name}: no .expected file; got:\n{message}"));
        assert_eq!(message, expected.trim_end(), "{name}");
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} invalid configs found");
}
