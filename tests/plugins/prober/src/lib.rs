//! Test fixture: tries every ambient capability a plugin should not have and
//! reports what happened, one line per attempt, as UTF-8 in output `report`.

use aimass_sdk::{DType, ModelInfo, ModelKind, Params, Result, SubModel, Tensor, Tensors};

struct Prober;

fn outcome<T, E: std::fmt::Display>(what: &str, result: std::result::Result<T, E>) -> String {
    match result {
        Ok(_) => format!("{what}: GRANTED"),
        Err(e) => format!("{what}: denied ({e})"),
    }
}

impl SubModel for Prober {
    fn describe() -> ModelInfo {
        ModelInfo::new("prober", "0.1.0", ModelKind::Other)
            .description("test fixture: probes for files, environment, arguments, sockets")
            .output("report", DType::U8, &[-1])
    }

    fn init(_: &Params) -> Result<Self> {
        Ok(Prober)
    }

    fn infer(&mut self, _: Tensors) -> Result<Tensors> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let args: Vec<String> = std::env::args().collect();
        let lines = [
            outcome("read /etc/passwd", std::fs::read("/etc/passwd")),
            outcome("read .", std::fs::read_dir(".")),
            outcome(
                "write /tmp/aimass-probe",
                std::fs::write("/tmp/aimass-probe", b"x"),
            ),
            outcome(
                "env",
                if env.is_empty() {
                    Err(format!("{} variables", env.len()))
                } else {
                    Ok(())
                },
            ),
            outcome(
                "args",
                if args.is_empty() {
                    Err(format!("{} arguments", args.len()))
                } else {
                    Ok(())
                },
            ),
            outcome(
                "tcp 127.0.0.1:80",
                std::net::TcpStream::connect("127.0.0.1:80"),
            ),
            outcome("udp bind", std::net::UdpSocket::bind("0.0.0.0:0")),
            outcome(
                "dns",
                std::net::ToSocketAddrs::to_socket_addrs("localhost:80"),
            ),
        ];
        let report = lines.join("\n").into_bytes();
        let len = report.len() as u32;
        Ok(Tensors::new().with("report", Tensor::new(&[len], &report)?))
    }
}

aimass_sdk::export_sub_model!(Prober);
