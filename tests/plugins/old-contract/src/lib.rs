//! A component exporting `aimass:plugin/model@0.1.0`: built against the
//! contract before BYTES. The host refuses it, naming the version to
//! rebuild against.

wit_bindgen::generate!({ path: "wit", world: "old" });

struct Old;

impl exports::aimass::plugin::model::Guest for Old {
    fn info() -> String {
        "old".into()
    }

    fn init(_params: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn infer(inputs: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(inputs)
    }
}

export!(Old);
