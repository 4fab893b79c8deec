//! A component exporting `aimass:plugin/model@0.2.0` with `info`, `init` and
//! `infer`, whose types are not the contract's.

wit_bindgen::generate!({ path: "wit", world: "impostor" });

struct Impostor;

impl exports::aimass::plugin::model::Guest for Impostor {
    fn info() -> u32 {
        7
    }

    fn init(_level: u32) {}

    fn infer(x: String) -> String {
        x
    }
}

export!(Impostor);
