//! An older client: Debian 12's kcat, built on librdkafka 2.0, which is strict about how
//! flexible-version tagged fields are encoded. Produces and consumes through the agent.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Agent;

fn kcat(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is not installed: apt-get install kcat (Debian 12 ships librdkafka 2.0)");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).expect("write to kcat");
        }
    }
    let out = child.wait_with_output().expect("kcat output");
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn librdkafka_2_0_kcat_produces_and_consumes() {
    let agent = Agent::start();
    let b = agent.bootstrap();
    let version = kcat(&["-V"], None);
    println!("{}", version.lines().next().unwrap_or_default());

    let lines: Vec<String> = (0..300).map(|i| format!("line-{i}")).collect();
    let input = lines.join("\n") + "\n";
    // Auto-created on first use; snappy batches pass through untouched.
    kcat(
        &[
            "-b", &b, "-P", "-t", "legacy", "-p", "0", "-z", "snappy", "-X", "acks=all",
        ],
        Some(&input),
    );
    kcat(
        &["-b", &b, "-P", "-t", "legacy", "-p", "0"],
        Some("tail-1\ntail-2\n"),
    );

    let out = kcat(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            "legacy",
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%o:%s\n",
        ],
        None,
    );
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), 302, "every record read back");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(got[i], format!("{i}:{line}"));
    }
    assert_eq!(got[300], "300:tail-1");
    assert_eq!(got[301], "301:tail-2");

    let md = kcat(&["-b", &b, "-L", "-t", "legacy"], None);
    assert!(md.contains("topic \"legacy\" with 1 partitions"), "{md}");
    assert!(
        md.contains(&format!("broker 0 at 127.0.0.1:{}", agent.port)),
        "{md}"
    );

    // Consuming from the end by a relative offset exercises ListOffsets.
    let out = kcat(
        &[
            "-b", &b, "-C", "-t", "legacy", "-p", "0", "-o", "-2", "-e", "-f", "%o:%s\n",
        ],
        None,
    );
    assert_eq!(out, "300:tail-1\n301:tail-2\n");
}
