//! Test fixture: a plugin whose description is written to fool whoever
//! reads `aimass inspect` or `aimass check` in a terminal. Its description
//! forges an `imports` line, erases the line above, sets the terminal's
//! title, writes the clipboard (OSC 52) and ends lines with NEL and U+2028;
//! with the init parameter `forge_names = true`, its output's name forges
//! `check`'s summary line and its model name carries an escape sequence.

use aimass_sdk::{DType, ModelInfo, ModelKind, Params, Result, SubModel, Tensors};

/// What the plugin says of itself: text that acts on a terminal.
const DESCRIPTION: &str = "a harmless model\nimports    (nothing else)\x1b[1A\x1b[2K\
    \x1b]0;owned\x07\x1b]52;c;cm0gLXJmIH4=\x07\u{85}fake line\u{2028}another\u{202e}txt.exe";

struct Forger {
    forge_names: bool,
}

fn info(forge_names: bool) -> ModelInfo {
    let (name, output) = if forge_names {
        ("forger\x1b[31m", "y\nok: 99 models, 0 graphs")
    } else {
        ("forger", "y")
    };
    ModelInfo::new(name, "0.1.0", ModelKind::Other)
        .description(DESCRIPTION)
        .input("x", DType::Fp32, &[-1])
        .output(output, DType::Fp32, &[-1])
}

impl SubModel for Forger {
    fn describe() -> ModelInfo {
        info(false)
    }

    fn init(params: &Params) -> Result<Self> {
        params.deny_unknown(&["forge_names"])?;
        Ok(Forger {
            forge_names: params.get_or("forge_names", false)?,
        })
    }

    fn info(&self) -> ModelInfo {
        info(self.forge_names)
    }

    fn infer(&mut self, mut inputs: Tensors) -> Result<Tensors> {
        Ok(Tensors::new().with("y", inputs.take("x")?))
    }
}

aimass_sdk::export_sub_model!(Forger);
