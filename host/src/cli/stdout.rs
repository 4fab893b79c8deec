//! A command's output on stdout. A reader that stops early (`aimass schema
//! | head`) ends the output, not the process: `print!` would panic with
//! "Broken pipe".

use std::io::Write;

/// Writes `text` to stdout; a closed pipe is the reader's choice, not an
/// error.
pub fn write(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write the output: {e}"))
        }
        _ => Ok(()),
    }
}

/// Writes `text` and a newline.
pub fn line(text: &str) -> Result<(), String> {
    write(&format!("{text}\n"))
}
