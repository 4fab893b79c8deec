//! Tests that need something outside the repository run where it is
//! configured and are reported as ignored (not silently passed) where it is
//! not. CI sets the `AIMASS_REQUIRE_*` variables, so there they always run
//! and fail if what they need is missing.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(aimass_python)");
    println!("cargo::rustc-check-cfg=cfg(aimass_ort)");
    println!("cargo::rustc-check-cfg=cfg(aimass_browser)");
    println!("cargo::rustc-check-cfg=cfg(aimass_ocr)");
    for (cfg, wanted, required) in [
        ("aimass_python", "AIMASS_PYTHON", "AIMASS_REQUIRE_PYTHON"),
        ("aimass_ort", "ORT_DYLIB_PATH", "AIMASS_REQUIRE_ORT"),
        ("aimass_ocr", "AIMASS_OCR_MODELS", "AIMASS_REQUIRE_OCR"),
        (
            "aimass_browser",
            "AIMASS_CHROMIUM",
            "AIMASS_REQUIRE_BROWSER",
        ),
    ] {
        println!("cargo::rerun-if-env-changed={wanted}");
        println!("cargo::rerun-if-env-changed={required}");
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        if set(wanted) || set(required) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
