//! Runs `tests/python/kafka_python_e2e.py` (the pure-Python kafka-python client: admin, producer
//! and consumer) against a real agent. Fails, and says how to fix it, when python3 or
//! kafka-python is missing: a missing client must not pass as a skipped test.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Agent;

/// Upper bound for the whole script; it takes seconds on a healthy agent.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
/// The script's exit status when `import kafka` fails.
const EXIT_MISSING_CLIENT: i32 = 2;

#[test]
fn kafka_python_produces_and_consumes_2000_records() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/kafka_python_e2e.py");
    assert!(script.is_file(), "missing {}", script.display());
    let agent = Agent::start();

    // Output goes to a file so a chatty client can never block on a full pipe.
    let out_dir = tempfile::tempdir().expect("temp dir");
    let out_path = out_dir.path().join("output.txt");
    let out = std::fs::File::create(&out_path).expect("output file");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg("--bootstrap")
        .arg(agent.bootstrap())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().expect("clone output handle")))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap_or_else(|e| {
            panic!("could not run python3 ({e}): install Python 3, then `pip install kafka-python`")
        });

    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the script") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    println!("---- kafka_python_e2e.py ----\n{output}");

    let Some(status) = status else {
        panic!("kafka_python_e2e.py did not finish within {SCRIPT_TIMEOUT:?}");
    };
    if status.code() == Some(EXIT_MISSING_CLIENT) {
        panic!("kafka-python is not installed: run `pip install kafka-python`\n{output}");
    }
    assert!(
        status.success(),
        "kafka_python_e2e.py failed ({status}):\n{output}"
    );
    assert!(
        output.contains("OK"),
        "the script did not report OK:\n{output}"
    );
    assert!(
        !agent.log().contains("panicked"),
        "the agent log shows a panic:\n{}",
        agent.log()
    );
}
